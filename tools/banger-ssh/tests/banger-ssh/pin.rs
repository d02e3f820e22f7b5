//! Pinned host keys: taken from the guest agent (a fake vsock here), checked,
//! written before any ssh; a changed key is refused until `--rekey`, and an
//! sshd with another key at the guest's address is refused on first contact.

use crate::cli::*;
use banger_testkit::fakevsock::{Behaviour, FakeVsock};

const ED: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGtAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
const ED2: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGtBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";

fn pin(env: &Env, args: &[&str]) -> std::process::Output {
    env.cmd().arg("pin").args(args).output().unwrap()
}

fn code_and_err(out: &std::process::Output) -> (Option<i32>, String) {
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn pin_takes_the_agents_keys_and_refuses_changed_or_bad_ones() {
    let env = Env::new();
    let agent = FakeVsock::start(hostkeys(&[ED]));
    env.vm_with_agent("box", "running", "10.0.0.2", Some(agent.path()));
    let kh = env.known_hosts("box");

    let out = pin(&env, &["box"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let l = &lines(&out.stdout)[0];
    assert_eq!(l["keys"], serde_json::json!([ED]));
    assert_eq!(l["replaced"], false);
    assert_eq!(l["known_hosts"], kh.display().to_string());
    assert_eq!(
        std::fs::read_to_string(&kh).unwrap(),
        format!("10.0.0.2 {ED}\n")
    );
    assert_eq!(agent.lines()[1], "GET /hostkeys HTTP/1.1");

    // Other keys: refused, with how to accept them; the file as it was.
    agent.set(hostkeys(&[ED2]));
    let (code, err) = code_and_err(&pin(&env, &["box"]));
    assert_eq!(code, Some(5), "{err}");
    assert!(err.contains("banger vm ssh box --rekey"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&kh).unwrap(),
        format!("10.0.0.2 {ED}\n")
    );
    let out = pin(&env, &["box", "--rekey"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(lines(&out.stdout)[0]["replaced"], true);
    assert_eq!(
        std::fs::read_to_string(&kh).unwrap(),
        format!("10.0.0.2 {ED2}\n")
    );

    // A hostile guest: a key line that would smuggle another host entry,
    // too many keys, not JSON. Refused, the pinned keys untouched.
    let smuggled = format!("{ED}\n10.9.9.9 {ED2}");
    let many: Vec<&str> = std::iter::repeat_n(ED, 17).collect();
    for b in [
        hostkeys(&[&smuggled]),
        hostkeys(&many),
        Behaviour::Http(200, "not json".into()),
    ] {
        agent.set(b);
        let (code, err) = code_and_err(&pin(&env, &["box", "--rekey"]));
        assert_eq!(code, Some(1), "{err}");
        assert!(err.contains("does not take"), "{err}");
        assert_eq!(
            std::fs::read_to_string(&kh).unwrap(),
            format!("10.0.0.2 {ED2}\n")
        );
    }
    // An agent from before /hostkeys: a prerequisite, naming the fix.
    agent.set(Behaviour::Http(404, r#"{"status":"error"}"#.into()));
    let (code, err) = code_and_err(&pin(&env, &["box"]));
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("banger image build"), "{err}");
    // No keys yet (first boot), until the timeout.
    agent.set(hostkeys(&[]));
    let (code, err) = code_and_err(&pin(&env, &["box", "--timeout", "0.5"]));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("no ssh host keys yet"), "{err}");

    // --uds/--port/--ip: what banger-vm passes before the record is committed.
    agent.set(hostkeys(&[ED]));
    let uds = agent.path().display().to_string();
    let out = pin(
        &env,
        &["web", "--uds", &uds, "--port", "52", "--ip", "10.0.0.3"],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        std::fs::read_to_string(env.known_hosts("web")).unwrap(),
        format!("10.0.0.3 {ED}\n")
    );
    for args in [
        &["web", "--uds", &uds][..],
        &["web", "--port", "52"],
        &["Bad/Name"],
        &["box", "--timeout", "0"],
    ] {
        assert_eq!(pin(&env, args).status.code(), Some(2), "{args:?}");
    }
    assert_eq!(pin(&env, &["ghost"]).status.code(), Some(3));
    env.vm("off", "stopped", "10.0.0.4");
    assert_eq!(pin(&env, &["off"]).status.code(), Some(5));
}

#[test]
fn no_keys_to_check_is_no_ssh() {
    let env = Env::new();
    // No agent in the record, nothing pinned: ssh would have to trust
    // whatever answers; banger-ssh does not run it.
    env.vm("box", "running", GUEST_IP);
    let out = env.cmd().args(["box", "--", "true"]).output().unwrap();
    let (code, err) = code_and_err(&out);
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("banger vm restart box"), "{err}");
    assert!(!env.known_hosts("box").exists());
}

#[test]
fn live_root_another_sshd_at_the_guests_address_is_refused() {
    if !live("live_root_another_sshd_at_the_guests_address_is_refused") {
        return;
    }
    let env = Env::new();
    let guest = Guest::start(&env);
    // The real guest's key is ED (its agent says so); what answers at its
    // address has another: refused on first contact, nothing learned.
    guest.agent.set(hostkeys(&[ED]));
    let out = guest.ssh(&env, &["box", "--", "true"]).output().unwrap();
    assert_eq!(out.status.code(), Some(255), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Host key verification failed"), "{err}");
    let pinned = format!("{GUEST_IP} {ED}\n");
    assert_eq!(
        std::fs::read_to_string(env.known_hosts("box")).unwrap(),
        pinned
    );
    // Plain ssh through the stanza refuses it too.
    let out = env.cmd().args(["config", "box"]).output().unwrap();
    let cfg = env.home.path().join("ssh_config");
    std::fs::write(&cfg, &out.stdout).unwrap();
    let st = guest
        .ns
        .command("ssh")
        .arg("-F")
        .arg(&cfg)
        .args(["-o", "BatchMode=yes", "box.vm", "true"])
        .status()
        .unwrap();
    assert_eq!(st.code(), Some(255));

    // The guest's keys change (its agent now reports sshd's): refused with
    // the way to accept them, then accepted on purpose.
    guest.agent.set(hostkeys(&[&guest.host_key]));
    let out = guest.ssh(&env, &["box", "--", "true"]).output().unwrap();
    let (code, err) = code_and_err(&out);
    assert_eq!(code, Some(5), "{err}");
    assert!(err.contains("--rekey"), "{err}");
    assert_eq!(
        std::fs::read_to_string(env.known_hosts("box")).unwrap(),
        pinned
    );
    let out = guest
        .ssh(&env, &["--rekey", "box", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        std::fs::read_to_string(env.known_hosts("box")).unwrap(),
        format!("{GUEST_IP} {}\n", guest.host_key)
    );
}
