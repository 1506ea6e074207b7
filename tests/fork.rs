//! A `fork` after sealing must not repeat a nonce or a session id (issue 23, item 1).
//!
//! The parent seals once (so any user-space generator it had is seeded), forks, and then parent
//! and child each seal a new session under the default configuration. The child sends its token
//! back over a pipe. Both tokens must carry different nonces and different session ids: a nonce
//! repeated under one key breaks AES-GCM's authentication.
//!
//! This test has no harness (`harness = false` in Cargo.toml): forking a process whose other
//! threads may hold locks is unsound, so the fork happens on the only thread there is.

use std::io::{Read as _, Write as _};
use std::os::fd::FromRawFd as _;
use std::time::SystemTime;

use base64::Engine as _;
use sealed_session::{Key, KeyRing, Session, SessionCodec, SessionConfig};

/// The nonce's place in a sealed token (FORMAT.md: header 6 bytes, then the 24-byte nonce).
const NONCE: std::ops::Range<usize> = 6..30;

/// Seals a new session holding one value and returns the token.
fn seal_new(codec: &SessionCodec) -> String {
    let mut session = Session::new();
    session.insert("user", 7_u32).expect("a small value");
    codec.seal_token(&mut session, SystemTime::now()).expect("a small session seals")
}

/// The nonce and the session id a token carries.
fn nonce_and_id(codec: &SessionCodec, token: &str) -> (Vec<u8>, String) {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token).expect("base64url");
    let session = codec.open_token(token, SystemTime::now()).expect("our own token opens");
    let id = session.id().expect("a sealed session has an id").to_string();
    (bytes[NONCE].to_vec(), id)
}

fn main() {
    let codec = SessionCodec::new(SessionConfig::default(), KeyRing::single(Key::generate()));
    // Seal before the fork, as a server does while serving requests.
    let before = seal_new(&codec);

    let mut fds = [0; 2];
    // SAFETY: `pipe` writes two descriptors into the array it is given.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0, "pipe");
    // SAFETY: the process has one thread (no harness), so the child inherits no held lock.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork");
    if pid == 0 {
        // The child: seal, send the token, leave without running the parent's exit handlers.
        // SAFETY: fds[1] is the pipe's write end, owned here alone.
        let mut pipe = unsafe { std::fs::File::from_raw_fd(fds[1]) };
        let token = seal_new(&codec);
        let status = i32::from(pipe.write_all(token.as_bytes()).is_err());
        drop(pipe);
        // SAFETY: `_exit` ends the child at once, as a forked child should.
        unsafe { libc::_exit(status) };
    }
    // SAFETY: fds[1] is the write end, closed here so the read below sees the child's end.
    unsafe { libc::close(fds[1]) };
    let parent_token = seal_new(&codec);
    // SAFETY: fds[0] is the pipe's read end, owned here alone.
    let mut pipe = unsafe { std::fs::File::from_raw_fd(fds[0]) };
    let mut child_token = String::new();
    pipe.read_to_string(&mut child_token).expect("the child's token");
    let mut status = 0;
    // SAFETY: `pid` is our child; `status` is a valid place for its exit status.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid, "waitpid");
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "the child failed");

    let (parent_nonce, parent_id) = nonce_and_id(&codec, &parent_token);
    let (child_nonce, child_id) = nonce_and_id(&codec, &child_token);
    let (before_nonce, _) = nonce_and_id(&codec, &before);
    println!("parent nonce {parent_nonce:02x?}\nchild  nonce {child_nonce:02x?}");
    assert_ne!(parent_nonce, child_nonce, "parent and child sealed with the same nonce");
    assert_ne!(parent_id, child_id, "parent and child drew the same session id");
    assert_ne!(before_nonce, parent_nonce);
    println!("fork: parent and child drew different nonces and session ids");
}
