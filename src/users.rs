//! User and group names for numeric ids, resolved once and cached — failures too; and the
//! shared [`Ids`] of a process's credentials.
//!
//! Uids unknown to the host (containers) make auditd's own tools 9–24× slower because every
//! failed NSS lookup is repeated per event (peers.md §4.4); here each id is looked up once.

use std::ffi::CStr;
use std::sync::Arc;

use crate::event::Ids;
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

/// Effective uid, real uid, effective gid, real gid, as a source reported them.
pub type Credentials = [Option<u32>; 4];

/// Slots in an [`IdsCache`]: far more than the credential sets a host runs under at once.
const IDS_SLOTS: usize = 256;

/// One shared [`Ids`] per credential set: an exec clones an `Arc` instead of formatting four ids
/// and copying four names into strings of its own.
///
/// Direct-mapped (a set hashes to one slot, a miss replaces it): bounded by construction, and
/// sets crafted to collide cost only a rebuild each, never a long probe.
#[derive(Debug)]
pub struct IdsCache {
    slots: Box<[Option<IdsSlot>]>,
}

/// A credential set and its ids.
type IdsSlot = (Credentials, Arc<Ids>);

impl Default for IdsCache {
    fn default() -> IdsCache {
        IdsCache {
            slots: vec![None; IDS_SLOTS].into_boxed_slice(),
        }
    }
}

impl IdsCache {
    pub fn new() -> IdsCache {
        IdsCache::default()
    }

    /// The ids (decimal, empty when absent) and names of `creds`.
    pub fn get(&mut self, creds: Credentials, names: &mut NameCache) -> Arc<Ids> {
        Arc::clone(self.get_ref(creds, names))
    }

    /// Like [`get`](Self::get), borrowed: a caller whose image may already hold these ids
    /// compares pointers and clones only on a change.
    pub fn get_ref(&mut self, creds: Credentials, names: &mut NameCache) -> &Arc<Ids> {
        let mut h = 0u64;
        for id in creds {
            let v = id.map_or(u64::MAX, u64::from);
            h = (h ^ v).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(29);
        }
        let slot = &mut self.slots[(h >> 32) as usize % IDS_SLOTS];
        if !matches!(slot, Some((key, _)) if *key == creds) {
            *slot = None;
        }
        &slot
            .get_or_insert_with(|| (creds, Arc::new(build_ids(creds, names))))
            .1
    }
}

fn build_ids(creds: Credentials, names: &mut NameCache) -> Ids {
    let [euid, uid, egid, gid] = creds;
    let text = |id: Option<u32>| id.map(|v| v.to_string()).unwrap_or_default();
    Ids {
        user_id: text(euid),
        user_name: euid.and_then(|v| names.user(v)),
        real_user_id: text(uid),
        real_user_name: uid.and_then(|v| names.user(v)),
        group_id: text(egid),
        group_name: egid.and_then(|v| names.group(v)),
        real_group_id: text(gid),
        real_group_name: gid.and_then(|v| names.group(v)),
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

    #[test]
    fn equal_credentials_share_one_ids() {
        let (mut c, mut names) = (IdsCache::new(), NameCache::new());
        let root = c.get([Some(0), Some(0), Some(0), Some(0)], &mut names);
        assert_eq!(
            (root.user_id.as_str(), root.user_name.as_deref()),
            ("0", Some("root"))
        );
        let again = c.get([Some(0), Some(0), Some(0), Some(0)], &mut names);
        assert!(Arc::ptr_eq(&root, &again));
        let odd = c.get([Some(3_999_999_999), None, Some(7), Some(0)], &mut names);
        assert_eq!(
            (
                odd.user_id.as_str(),
                odd.user_name.as_deref(),
                odd.real_user_id.as_str(),
                odd.group_id.as_str(),
                odd.real_group_name.as_deref()
            ),
            ("3999999999", None, "", "7", Some("root"))
        );
        // Many more sets than slots: every answer is still exact.
        for round in 0..2 {
            for uid in 0..3 * IDS_SLOTS as u32 {
                let ids = c.get([Some(uid), Some(uid + 1), None, None], &mut names);
                assert_eq!(ids.user_id, uid.to_string(), "round {round}");
                assert_eq!(ids.real_user_id, (uid + 1).to_string());
            }
        }
    }
}
