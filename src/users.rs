//! User and group names for numeric ids, resolved once and cached — failures too.
//!
//! Uids unknown to the host (containers) make auditd's own tools 9–24× slower because every
//! failed NSS lookup is repeated per event (peers.md §4.4); here each id is looked up once.

use std::ffi::CStr;

use crate::id_hash::{id_map, IdMap};

/// Most ids remembered per kind; past it the cache starts over (ids are few in practice).
const MAX_CACHED: usize = 4096;

/// Cached `getpwuid_r`/`getgrgid_r`.
#[derive(Debug)]
pub struct NameCache {
    users: IdMap<u32, Option<String>>,
    groups: IdMap<u32, Option<String>>,
}

impl Default for NameCache {
    fn default() -> NameCache {
        NameCache {
            users: id_map(),
            groups: id_map(),
        }
    }
}

impl NameCache {
    pub fn new() -> NameCache {
        NameCache::default()
    }

    pub fn user(&mut self, uid: u32) -> Option<String> {
        self.user_name(uid).map(str::to_owned)
    }

    pub fn group(&mut self, gid: u32) -> Option<String> {
        self.group_name(gid).map(str::to_owned)
    }

    /// Like [`user`](Self::user), borrowed: for callers that copy it into a buffer they reuse.
    pub fn user_name(&mut self, uid: u32) -> Option<&str> {
        cached(&mut self.users, uid, lookup_user)
    }

    /// Like [`group`](Self::group), borrowed.
    pub fn group_name(&mut self, gid: u32) -> Option<&str> {
        cached(&mut self.groups, gid, lookup_group)
    }
}

fn cached(
    map: &mut IdMap<u32, Option<String>>,
    id: u32,
    lookup: fn(u32) -> Option<String>,
) -> Option<&str> {
    if map.len() >= MAX_CACHED && !map.contains_key(&id) {
        map.clear();
    }
    map.entry(id).or_insert_with(|| lookup(id)).as_deref()
}

fn lookup_user(uid: u32) -> Option<String> {
    let mut buf = vec![0u8; 4096];
    // SAFETY: `pwd` is plain old data that getpwuid_r fills; `buf` outlives the call and
    // its length is passed; the returned pointers point into `buf`, read before it drops.
    unsafe {
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut out: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr().cast(), buf.len(), &mut out);
        if rc != 0 || out.is_null() || pwd.pw_name.is_null() {
            return None;
        }
        Some(CStr::from_ptr(pwd.pw_name).to_string_lossy().into_owned())
    }
}

fn lookup_group(gid: u32) -> Option<String> {
    let mut buf = vec![0u8; 16384];
    // SAFETY: as in `lookup_user`, for `group`/getgrgid_r.
    unsafe {
        let mut grp: libc::group = std::mem::zeroed();
        let mut out: *mut libc::group = std::ptr::null_mut();
        let rc = libc::getgrgid_r(gid, &mut grp, buf.as_mut_ptr().cast(), buf.len(), &mut out);
        if rc != 0 || out.is_null() || grp.gr_name.is_null() {
            return None;
        }
        Some(CStr::from_ptr(grp.gr_name).to_string_lossy().into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_resolves_and_unknown_ids_are_cached_as_unknown() {
        let mut c = NameCache::new();
        assert_eq!(c.user(0).as_deref(), Some("root"));
        assert_eq!(
            c.group(0).as_deref(),
            Some(if cfg!(target_os = "macos") {
                "wheel"
            } else {
                "root"
            })
        );
        assert_eq!(c.user(3_999_999_999), None);
        assert!(
            c.users.contains_key(&3_999_999_999),
            "a failed lookup is remembered"
        );
    }
}
