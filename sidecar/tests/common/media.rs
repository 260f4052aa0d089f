//! The v11 media calls (`/msync/`) as a client makes them.

use std::collections::BTreeMap;
use std::io::Write;

use serde_json::{Value, json};
use zip::write::SimpleFileOptions;

use super::packages::zip_members;
use super::{Response, TestApp};

/// An `uploadChanges` zip: `members` as given, then `_meta` holding `meta`.
pub fn media_zip(meta: &Value, members: &[(&str, &[u8])], deflate: bool) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let method = if deflate {
        zip::CompressionMethod::Deflated
    } else {
        zip::CompressionMethod::Stored
    };
    let options = SimpleFileOptions::default()
        .compression_method(method)
        .large_file(true);
    for (name, data) in members {
        writer.start_file(*name, options).unwrap();
        writer.write_all(data).unwrap();
    }
    writer.start_file("_meta", options).unwrap();
    writer.write_all(meta.to_string().as_bytes()).unwrap();
    writer.finish().unwrap().into_inner()
}

impl TestApp {
    pub async fn media_begin(&self, key: &str, client_version: &str) -> Response {
        self.call_media("begin", key, json!({"v": client_version}))
            .await
    }

    pub async fn media_changes(&self, key: &str, last_usn: i64) -> Response {
        self.call_media("mediaChanges", key, json!({"lastUsn": last_usn}))
            .await
    }

    pub async fn media_sanity(&self, key: &str, local: i64) -> Response {
        self.call_media("mediaSanity", key, json!({"local": local}))
            .await
    }

    pub async fn download_files(&self, key: &str, names: Value) -> Response {
        self.call_media("downloadFiles", key, json!({"files": names}))
            .await
    }

    /// `uploadChanges` with a zip built by the caller; the answer is returned as it is.
    pub async fn upload_media_zip(&self, key: &str, zip: Vec<u8>) -> Response {
        let body = zstd::encode_all(&zip[..], 0).unwrap();
        self.raw_media("uploadChanges", Some(Self::header(key, "media")), body)
            .await
    }

    /// Uploads files through `uploadChanges` as a client would; must succeed.
    pub async fn upload_media(&self, key: &str, files: &[(&str, &[u8])]) {
        let mut members: Vec<(String, Vec<u8>)> = Vec::new();
        let mut meta = Vec::new();
        for (index, (name, data)) in files.iter().enumerate() {
            members.push((index.to_string(), data.to_vec()));
            meta.push(json!([name, index.to_string()]));
        }
        members.push(("_meta".into(), Value::Array(meta).to_string().into_bytes()));
        let zip = zip_members(&members, zip::CompressionMethod::Stored);
        let response = self.upload_media_zip(key, zip).await;
        assert_eq!(response.status, 200, "{}", response.text());
        assert_eq!(response.json()["err"], "");
    }

    /// The media USN from `begin` and every entry of `mediaChanges` since 0, by name.
    pub async fn media_state(&self, key: &str) -> (i64, BTreeMap<String, (i64, String)>) {
        let begin = self.media_begin(key, "anki,test,linux").await;
        assert_eq!(begin.status, 200, "{}", begin.text());
        let usn = begin.json()["data"]["usn"].as_i64().unwrap();
        let changes = self.media_changes(key, 0).await;
        assert_eq!(changes.status, 200, "{}", changes.text());
        let entries = changes.json()["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|entry| {
                (
                    entry[0].as_str().unwrap().to_string(),
                    (
                        entry[1].as_i64().unwrap(),
                        entry[2].as_str().unwrap().to_string(),
                    ),
                )
            })
            .collect();
        (usn, entries)
    }

    /// One file through `downloadFiles`; must succeed.
    pub async fn download_media(&self, key: &str, name: &str) -> Vec<u8> {
        let download = self.download_files(key, json!([name])).await;
        assert_eq!(download.status, 200, "{}", download.text());
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(download.body)).unwrap();
        let mut content = Vec::new();
        std::io::Read::read_to_end(&mut archive.by_name("0").unwrap(), &mut content).unwrap();
        content
    }
}
