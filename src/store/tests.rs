//! The store against real directories: reads, writes, damage, pruning and pins, and the
//! modes that keep it private.

use super::*;

fn temp_home(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mesh-store-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn put_read_and_chunks() {
    let home = temp_home("rw");
    let s = BlobStore::new(&home);
    let id = s.put(b"hello world").unwrap();
    assert_eq!(id, ContentId::of(b"hello world"));
    assert!(s.contains(id));
    assert_eq!(s.read(id).unwrap(), b"hello world");
    assert_eq!(s.read_chunk(id, 6, 100).unwrap(), (11, b"world".to_vec()));
    assert_eq!(s.read_chunk(id, 50, 4).unwrap(), (11, Vec::new()));
    let other = ContentId::of(b"nope");
    assert!(matches!(s.read(other), Err(StoreError::Missing(_))));
    std::fs::remove_dir_all(&home).unwrap();
}

#[test]
fn a_corrupted_file_is_detected_and_removed() {
    let home = temp_home("bad");
    let id = BlobStore::new(&home).put(b"precious").unwrap();
    std::fs::write(BlobStore::new(&home).path(id), b"tampered").unwrap();
    let fresh = BlobStore::new(&home); // a new process checks again
    assert!(matches!(fresh.read(id), Err(StoreError::Corrupt(_))));
    assert!(!fresh.contains(id), "the bad file is gone, so it will be fetched again");
    // Storing the blob again over a damaged copy replaces the copy.
    std::fs::write(fresh.path(id), b"tampered").unwrap();
    assert_eq!(BlobStore::new(&home).put(b"precious").unwrap(), id);
    assert_eq!(BlobStore::new(&home).read(id).unwrap(), b"precious");
    std::fs::remove_dir_all(&home).unwrap();
}

#[test]
fn a_whole_store_is_checked_and_only_damaged_blobs_go() {
    let home = temp_home("fsck");
    let store = BlobStore::new(&home);
    assert_eq!(store.check_all().unwrap(), StoreCheck::default(), "no store yet");
    let good = store.put(b"good").unwrap();
    let bad = store.put(b"bad!").unwrap();
    std::fs::write(store.path(bad), b"rot!").unwrap();
    std::fs::write(home.join("blobs").join("not-a-blob.tmp"), b"x").unwrap();
    age(&store.path(good), 3600);
    let last_use = std::fs::metadata(store.path(good)).unwrap().modified().unwrap();
    let found = BlobStore::new(&home).check_all().unwrap();
    assert_eq!(found, StoreCheck { sound: 1, bytes: 4, removed: vec![bad] });
    let after = std::fs::metadata(store.path(good)).unwrap().modified().unwrap();
    assert_eq!(after, last_use, "checking is not using: prune's order stays");
    assert!(store.contains(good) && !store.contains(bad));
    assert!(home.join("blobs").join("not-a-blob.tmp").exists(), "other files are left alone");
    std::fs::remove_dir_all(&home).unwrap();
}

fn age(path: &Path, secs: u64) {
    let f = std::fs::File::options().append(true).open(path).unwrap();
    f.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(secs)).unwrap();
}

const HOUR: u64 = 3600;

#[test]
fn prune_keeps_the_most_recently_used_within_budget() {
    let home = temp_home("lru");
    let s = BlobStore::new(&home);
    let old = s.put(&[1u8; 100]).unwrap();
    let mid = s.put(&[2u8; 100]).unwrap();
    let new = s.put(&[3u8; 100]).unwrap();
    for (id, hours) in [(old, 3), (mid, 2), (new, 1)] {
        age(&s.path(id), hours * HOUR);
    }
    s.read(old).unwrap(); // reading makes it the most recently used
    assert_eq!(prune(&home.join("blobs"), 250).unwrap(), (1, 100));
    assert!(!s.contains(mid), "the least recently used went");
    assert!(s.contains(old) && s.contains(new));
    assert_eq!(prune(&home.join("blobs"), 250).unwrap(), (0, 0));
    assert_eq!(prune(&home.join("nothing-here"), 0).unwrap(), (0, 0));
    std::fs::remove_dir_all(&home).unwrap();
}

#[test]
fn pinned_and_recently_used_blobs_stay_beyond_the_budget() {
    let home = temp_home("pins");
    let dir = home.join("blobs");
    let pinning = BlobStore::pinning(&home);
    let sent = pinning.put(&[1u8; 100]).unwrap();
    let plain = BlobStore::new(&home);
    let fetched = plain.put(&[2u8; 100]).unwrap();
    let waiting = plain.put(&[3u8; 100]).unwrap();
    let stale = plain.put(&[4u8; 100]).unwrap();
    pinning.pin(waiting).unwrap();
    for id in [sent, waiting, stale] {
        age(&plain.path(id), 5 * HOUR);
    }
    // A budget of nothing: only the stale blob may go. The pinned ones are old, the
    // fetched one is new.
    assert_eq!(prune(&dir, 0).unwrap(), (1, 100));
    assert!(!plain.contains(stale));
    assert!(plain.contains(sent) && plain.contains(waiting) && plain.contains(fetched));
    drop(pinning);
    assert_eq!(std::fs::read_dir(dir.join(".pins")).unwrap().count(), 0, "its pins went with it");
    assert_eq!(prune(&dir, 0).unwrap(), (2, 200), "unpinned, the old ones go");
    assert!(plain.contains(fetched), "still within the grace");
    std::fs::remove_dir_all(&home).unwrap();
}

#[test]
fn what_a_dead_process_left_is_cleared() {
    let home = temp_home("dead");
    let dir = home.join("blobs");
    let s = BlobStore::new(&home);
    let id = s.put(b"pinned by the dead").unwrap();
    age(&s.path(id), 5 * HOUR);
    // No process has pid 4194305 (above Linux's largest, 2^22).
    let dead = 4_194_305;
    std::fs::create_dir_all(dir.join(".pins")).unwrap();
    std::fs::write(dir.join(".pins").join(format!("{dead}.0")), format!("{id}\n")).unwrap();
    std::fs::write(dir.join(format!(".in.{dead}.3")), b"half a fetch").unwrap();
    let mine = dir.join(format!(".in.{}.3", std::process::id()));
    std::fs::write(&mine, b"a fetch in progress").unwrap();
    assert_eq!(prune(&dir, 0).unwrap(), (1, 18), "the dead's pin holds nothing");
    assert!(!dir.join(format!(".in.{dead}.3")).exists(), "its half-written fetch went");
    assert!(mine.exists(), "a live process's write stays");
    assert_eq!(std::fs::read_dir(dir.join(".pins")).unwrap().count(), 0);
    std::fs::remove_dir_all(&home).unwrap();
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

/// Runs `f` under the umask `mask`, restoring the old one after. The umask is the
/// process's: other tests running meanwhile create their files under it too, which a
/// permissive but common one (0o022) does not harm.
fn with_umask<T>(mask: libc::mode_t, f: impl FnOnce() -> T) -> T {
    // SAFETY: umask has no preconditions and cannot fail.
    let old = unsafe { libc::umask(mask) };
    let out = f();
    // SAFETY: as above.
    unsafe { libc::umask(old) };
    out
}

#[test]
fn the_store_is_private_to_its_user_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let home = temp_home("modes");
    let dir = home.join("blobs");
    with_umask(0o022, || {
        let store = BlobStore::pinning(&home);
        let put = store.put(b"a secret").unwrap();
        let src = home.join("shadow");
        std::fs::write(&src, b"root's file").unwrap();
        std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o644)).unwrap();
        let (sent, _) = store.put_file(&src).unwrap();
        let mut w = store.incoming().unwrap();
        w.write(b"from a peer").unwrap();
        let (fetched, tmp) = (w.id(), w.tmp.clone());
        assert_eq!(mode(&tmp), 0o600, "a write in progress");
        w.finish(&store, fetched).unwrap();
        assert_eq!(mode(&dir), 0o700, "blobs/");
        for id in [put, sent, fetched] {
            assert_eq!(mode(&store.path(id)), 0o600, "blob {id}");
        }
        let pins = dir.join(".pins");
        assert_eq!(mode(&pins), 0o700, ".pins/");
        let pin = std::fs::read_dir(&pins).unwrap().next().unwrap().unwrap().path();
        assert_eq!(mode(&pin), 0o600, "a pin file");
    });
    std::fs::remove_dir_all(&home).unwrap();
}

#[test]
fn an_older_store_is_made_private_when_opened() {
    use std::os::unix::fs::PermissionsExt;
    let home = temp_home("older");
    let dir = home.join("blobs");
    // As mesh before this check left a store under the umask 0o022.
    let set = |p: &Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    std::fs::create_dir_all(dir.join(".pins")).unwrap();
    let id = ContentId::of(b"old");
    std::fs::write(dir.join(id.to_string()), b"old").unwrap();
    std::fs::write(dir.join(".pins").join("1.0"), format!("{id}\n")).unwrap();
    std::fs::write(home.join("elsewhere"), b"not the store's").unwrap();
    std::os::unix::fs::symlink(home.join("elsewhere"), dir.join("a-link")).unwrap();
    for (p, m) in [(dir.join(id.to_string()), 0o644), (dir.join(".pins").join("1.0"), 0o664)] {
        set(&p, m);
    }
    set(&home.join("elsewhere"), 0o644);
    for d in [dir.join(".pins"), dir.clone()] {
        set(&d, 0o755);
    }
    let store = BlobStore::new(&home);
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join(".pins")), 0o700);
    assert_eq!(mode(&store.path(id)), 0o600);
    assert_eq!(mode(&dir.join(".pins").join("1.0")), 0o600);
    assert_eq!(mode(&home.join("elsewhere")), 0o644, "a symlink's target is not the store's");
    assert_eq!(store.read(id).unwrap(), b"old", "its blobs are still the user's to read");
    assert_eq!(private::secure(&dir).unwrap(), 0, "private now: nothing to do");
    std::fs::remove_dir_all(&home).unwrap();
}

/// A node's pins for its control clients: held for the client's process, which may unpin
/// them; a dead client's go at the next prune, and its pid is then free to pin afresh.
#[test]
fn a_node_pins_for_a_client_process_until_it_unpins_or_ends() {
    let home = temp_home("client-pins");
    let dir = home.join("blobs");
    let plain = BlobStore::new(&home);
    let (code, list, other) =
        (plain.put(b"code").unwrap(), plain.put(b"task list").unwrap(), plain.put(b"other").unwrap());
    [code, list, other].iter().for_each(|&id| age(&plain.path(id), 5 * HOUR));
    let pins = BlobStore::client_pins(&home);
    // This test's own process stands for a live client.
    let client = std::process::id();
    pins.pin(client, code).unwrap();
    pins.pin(client, list).unwrap();
    assert_eq!(prune(&dir, 0).unwrap(), (1, 5), "only the unpinned blob goes");
    assert!(plain.contains(code) && plain.contains(list));
    pins.unpin(client, &[list]).unwrap();
    assert_eq!(prune(&dir, 0).unwrap(), (1, 9), "the unpinned task list goes");
    assert!(plain.contains(code), "the code stays pinned");
    // A client that has ended: its pins hold nothing.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    pins.pin(dead, code).unwrap();
    drop(pins);
    assert!(plain.contains(code), "the node's end does not unpin its live clients");
    let left = std::fs::read_dir(dir.join(".pins")).unwrap().count();
    assert_eq!(left, 2, "the live client's pin file and the dead one's");
    assert_eq!(prune(&dir, 0).unwrap(), (0, 0), "the live client's pin still holds");
    assert_eq!(std::fs::read_dir(dir.join(".pins")).unwrap().count(), 1, "the dead client's file went");
    std::fs::remove_dir_all(&home).unwrap();
}

#[test]
fn a_node_pins_for_at_most_so_many_processes() {
    let home = temp_home("client-pins-cap");
    let plain = BlobStore::new(&home);
    let id = plain.put(b"x").unwrap();
    let pins = BlobStore::client_pins(&home);
    // Pids above Linux's largest (2^22) belong to no process: the cap counts them until
    // they are seen to be dead, which a full table checks first.
    let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
    for pid in 0..MAX_PINNING_CLIENTS as u32 - 1 {
        pins.pin(4_194_305 + pid, id).unwrap();
    }
    pins.pin(child.id(), id).unwrap();
    assert_eq!(pins.processes(), MAX_PINNING_CLIENTS);
    pins.pin(std::process::id(), id).unwrap();
    assert_eq!(pins.processes(), 2, "a full table drops the dead and takes the new one");
    child.kill().unwrap();
    child.wait().unwrap();
    std::fs::remove_dir_all(&home).unwrap();
}
