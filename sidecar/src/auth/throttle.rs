//! The login throttling rule: slow a password guesser down without locking the real user out.
//! docs/operations.md ("Login throttling") states the same rule for operators.
//!
//! With `M` = `SIDECAR_LOGIN_MAX_FAILURES`, failures are counted in fixed windows of
//! `SIDECAR_LOGIN_WINDOW_SECS` for three subjects:
//! - one username from one client address: `M` failures, then that pair gets 429;
//! - one client address, any usernames: `5 M`, then that address gets 429 (a spray);
//! - one username from all addresses: `5 M`, then 429, but only for addresses that have not
//!   logged in successfully as that username in the last [`TRUSTED_FOR_SECS`] (a botnet).
//!
//! So an attacker can exhaust only their own budgets: the real user's device keeps its own
//! (username, address) budget and, once it has logged in from there, is exempt from the
//! username-wide one. A successful login clears its (username, address) count only, so it
//! does not refill an attacker's budget elsewhere.

use std::net::IpAddr;

/// Many people can share one address behind NAT, and a botnet's guesses for one username are
/// spread over many addresses, so both of those budgets are wider than the per-pair one.
pub const IP_BUDGET_MULTIPLIER: i64 = 5;
pub const USERNAME_BUDGET_MULTIPLIER: i64 = 5;

/// How long a successful login from an address exempts that address from the username-wide
/// budget of that username.
pub const TRUSTED_FOR_SECS: i64 = 30 * 24 * 3600;

/// The keys under which failures are counted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subjects {
    /// The username, lowercased: variants that differ by case count together.
    pub user: String,
    /// The client address, an IPv6 one cut to its /64 (see [`address_subject`]).
    pub ip: String,
    /// `<address> <username>`: addresses contain no space, so the pair is unambiguous.
    pub user_ip: String,
}

impl Subjects {
    pub fn new(username: &str, ip: IpAddr) -> Self {
        let user = username.to_lowercase();
        let ip = address_subject(ip);
        let user_ip = format!("{ip} {user}");
        Self { user, ip, user_ip }
    }
}

/// An IPv4 address as is (also when it arrives IPv4-mapped); an IPv6 address as its /64
/// prefix, because one subscriber usually holds a whole /64 and could otherwise rotate through
/// it for fresh budgets.
pub fn address_subject(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                let prefix = std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
                format!("{prefix}/64")
            }
        },
    }
}

/// Failures counted in the open windows, and whether the address is trusted for the username.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub user: i64,
    pub ip: i64,
    pub user_ip: i64,
    pub trusted_address: bool,
}

/// Which budget is spent; `None` lets the attempt through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exhausted {
    UsernameFromAddress,
    Address,
    Username,
}

impl Exhausted {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UsernameFromAddress => "username_from_address",
            Self::Address => "address",
            Self::Username => "username",
        }
    }
}

/// The rule itself. It does not depend on whether the username exists, so a 429 tells nothing
/// about that either.
pub fn exhausted(counts: Counts, max_failures: i64) -> Option<Exhausted> {
    if counts.user_ip >= max_failures {
        Some(Exhausted::UsernameFromAddress)
    } else if counts.ip >= max_failures.saturating_mul(IP_BUDGET_MULTIPLIER) {
        Some(Exhausted::Address)
    } else if !counts.trusted_address
        && counts.user >= max_failures.saturating_mul(USERNAME_BUDGET_MULTIPLIER)
    {
        Some(Exhausted::Username)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_fold_case_and_ipv6_subnets() {
        let v4 = Subjects::new("Alice", "203.0.113.7".parse().unwrap());
        assert_eq!(v4.user, "alice");
        assert_eq!(v4.ip, "203.0.113.7");
        assert_eq!(v4.user_ip, "203.0.113.7 alice");
        let a = Subjects::new("bob", "2001:db8:1:2::1".parse().unwrap());
        let b = Subjects::new("bob", "2001:db8:1:2:ffff:1:2:3".parse().unwrap());
        assert_eq!(a, b);
        assert_eq!(a.ip, "2001:db8:1:2::/64");
        assert_ne!(
            a.ip,
            Subjects::new("bob", "2001:db8:1:3::1".parse().unwrap()).ip
        );
        assert_eq!(
            address_subject("::ffff:198.51.100.2".parse().unwrap()),
            "198.51.100.2"
        );
    }

    #[test]
    fn each_budget_throttles_only_its_own_subject() {
        let m = 10;
        let quiet = Counts::default();
        assert_eq!(exhausted(quiet, m), None);
        // The attacker's own pair and address run out...
        let pair = Counts {
            user_ip: m,
            ..quiet
        };
        assert_eq!(exhausted(pair, m), Some(Exhausted::UsernameFromAddress));
        let spray = Counts { ip: 5 * m, ..quiet };
        assert_eq!(exhausted(spray, m), Some(Exhausted::Address));
        // ...while the username-wide count alone stops only untrusted addresses.
        let botnet = Counts {
            user: 5 * m,
            ..quiet
        };
        assert_eq!(exhausted(botnet, m), Some(Exhausted::Username));
        let owner = Counts {
            trusted_address: true,
            ..botnet
        };
        assert_eq!(exhausted(owner, m), None);
        let below = Counts {
            user: 5 * m - 1,
            ip: 5 * m - 1,
            user_ip: m - 1,
            trusted_address: false,
        };
        assert_eq!(exhausted(below, m), None);
    }
}
