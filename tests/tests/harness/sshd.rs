//! `Sshd`: key-only loopback sshd.

use barman_testkit::{Sshd, current_user, is_root, pid_alive};

#[test]
fn sshd_runs_a_command_as_the_current_user() {
    let sshd = Sshd::start().expect("start sshd");
    let out = sshd.run("echo hello").expect("run ssh");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\n");
    let out = sshd.run("id -un").unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        current_user().unwrap()
    );
    assert!(
        sshd.ssh_command()
            .ends_with(&format!("{}@127.0.0.1", sshd.user()))
    );
    // A failing remote command reports its exit status.
    let out = sshd.run("exit 3").unwrap();
    assert_eq!(out.status.code(), Some(3));

    let pid = sshd.pid();
    drop(sshd);
    assert!(!pid_alive(pid));
}

#[test]
fn sshd_as_root_logs_in_postgres() {
    if !is_root().unwrap() {
        // A non-root sshd can only log in its own user: the builder must refuse another.
        let err = Sshd::builder().user("root").start().unwrap_err();
        assert!(err.to_string().contains("non-root sshd"), "{err}");
        return;
    }
    let sshd = Sshd::builder()
        .user("postgres")
        .start()
        .expect("start sshd for postgres");
    let out = sshd.run("id -un").expect("run ssh");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "postgres");
    // The shell-quoted form in ssh_command works through sh -c as Barman uses it.
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{} 'echo via-sh'", sshd.ssh_command()))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "via-sh\n", "{out:?}");
}
