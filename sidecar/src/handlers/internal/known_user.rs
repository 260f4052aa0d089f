//! The admin endpoints act on Django users: an id that is not in Django's user table gets a
//! 404, not an empty answer that looks like a user without data.

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

pub async fn require_user(state: &AppState, user_id: i64) -> ApiResult<()> {
    state
        .db
        .find_user_by_id(user_id)
        .await?
        .map(|_| ())
        .ok_or_else(|| ApiError::NotFound(format!("no user with id {user_id}")))
}
