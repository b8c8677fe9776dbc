//! What the machine's user database (NSS: `/etc/passwd`, `/etc/group`, userdb records of every daemon) already
//! holds, so a tenant never takes a name or an id that means something else: an administrator's account, a
//! system user, a sysusers group.

use std::collections::HashSet;
use std::ops::RangeInclusive;

use nix::unistd::{Gid, Group, Uid, User};

/// Why `name` cannot be a new tenant's user, if it cannot.
pub fn name_taken(name: &str) -> Option<String> {
    if let Ok(Some(user)) = User::from_name(name) {
        return Some(format!(
            "{name:?} is already a user on this machine (uid {}: an administrator's account or a system user); \
             choose another tenant name",
            user.uid
        ));
    }
    if let Ok(Some(group)) = Group::from_name(name) {
        return Some(format!(
            "{name:?} is already a group on this machine (gid {}); choose another tenant name",
            group.gid
        ));
    }
    None
}

/// The first uid in `range` that no tenant has (`used`) and that is neither a uid nor a gid in NSS.
pub fn free_uid(range: &RangeInclusive<u32>, used: &HashSet<u32>) -> Option<u32> {
    range.clone().find(|id| {
        !used.contains(id)
            && !matches!(User::from_uid(Uid::from_raw(*id)), Ok(Some(_)))
            && !matches!(Group::from_gid(Gid::from_raw(*id)), Ok(Some(_)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_names_and_ids_are_taken() {
        assert!(name_taken("root").unwrap().contains("already a user"));
        assert!(name_taken("rtnobodyhere").is_none());
        assert_eq!(free_uid(&(0..=0), &HashSet::new()), None, "root's uid");
        assert_eq!(
            free_uid(&(40_000..=40_002), &HashSet::from([40_000])),
            Some(40_001)
        );
    }
}
