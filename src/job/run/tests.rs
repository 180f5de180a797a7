//! The run job's pieces: replacement strings (against GNU parallel), paths that travel,
//! and what a result may return.

use super::*;

fn words(s: &[&str]) -> Vec<String> {
    s.iter().map(|w| w.to_string()).collect()
}

/// What GNU parallel 20221122 prints for `parallel echo WORD ::: INPUT`.
const GNU: &[(&str, &str, &str)] = &[
    ("{}", "dir/sub/a.tar.gz", "dir/sub/a.tar.gz"),
    ("{.}", "dir/sub/a.tar.gz", "dir/sub/a.tar"),
    ("{.}", "a.b/c", "a.b/c"),
    ("{.}", ".hidden", ""),
    ("{.}", "dir/.hidden", "dir/"),
    ("{.}", "/abs/x.y", "/abs/x"),
    ("{.}", "x.", "x"),
    ("{.}", "a/", "a/"),
    ("{/}", "dir/sub/a.tar.gz", "a.tar.gz"),
    ("{/}", "a/", ""),
    ("{/}", "/x", "x"),
    ("{//}", "dir/sub/a.tar.gz", "dir/sub"),
    ("{//}", "plain", "."),
    ("{//}", "a/", "."),
    ("{//}", "/x", "/"),
    ("{//}", "/abs/x.y", "/abs"),
    ("{/.}", "dir/sub/a.tar.gz", "a.tar"),
    ("{/.}", "dir/.hidden", ""),
    ("{/.}", "a.b.", "a.b"),
    ("{/.}", "a b.c", "a b"),
];

#[test]
fn replacement_strings_fill_as_gnu_parallel_does() {
    for &(word, input, want) in GNU {
        assert_eq!(fill(word, input, 7), want, "{word} of {input}");
    }
    assert_eq!(fill("x{}y{#}z", "in", 7), "xiny7z");
    assert_eq!(fill("--out={.}.flac", "song.wav", 1), "--out=song.flac");
    assert_eq!(fill("{unknown}", "in", 1), "{unknown}");
}

/// The same table against the real GNU parallel, where it is installed (CI installs it).
#[test]
fn the_table_matches_the_installed_gnu_parallel() {
    let Ok(v) = std::process::Command::new("parallel").arg("--version").output() else {
        eprintln!("GNU parallel is not installed: the table above stands for it");
        return;
    };
    assert!(v.status.success());
    for &(word, input, want) in GNU {
        let out = std::process::Command::new("parallel")
            .args(["--will-cite", "-k", "printf", "%s", word, ":::", input])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), want, "GNU parallel's {word} of {input}");
    }
}

#[test]
fn a_result_may_return_only_what_the_job_asked_for() {
    let job = RunJob {
        command: words(&["true"]),
        tasks: 1,
        inputs: ContentId::of(b"t"),
        files: None,
        returns: words(&["{.}.out", "log"]),
        timeout: None,
        memory_mb: None,
        retries: 0,
        halt: None,
        needs: Needs::native(Vec::new()),
    };
    let ret = |path: &str, len| Returned { path: path.into(), blob: ContentId::of(path.as_bytes()), len };
    let out = |returned| RunOutput {
        ended: Ended::Exit(0),
        problem: None,
        stdout: Captured::Inline(ByteBuf::new()),
        stderr: Captured::Inline(ByteBuf::new()),
        returned,
        started_ms: 0,
    };
    assert_eq!(out(vec![ret("a.out", 5), ret("log", 1)]).fits(&job), Ok(()));
    let refused = [
        (vec![ret("a", 1), ret("b", 1), ret("c", 1)], Unfit::TooManyReturns { got: 3, patterns: 2 }),
        (vec![ret("../x", 1)], Unfit::ReturnPath(PathError::Parent("../x".into()))),
        (vec![ret("/etc/x", 1)], Unfit::ReturnPath(PathError::Absolute("/etc/x".into()))),
        (vec![ret("log", 1), ret("log", 1)], Unfit::ReturnedTwice("log".into())),
        (
            vec![ret("big", MAX_FILE + 1)],
            Unfit::ReturnTooLarge { path: "big".into(), len: MAX_FILE + 1, max: MAX_FILE },
        ),
    ];
    for (returned, why) in refused {
        assert_eq!(out(returned).fits(&job), Err(why));
    }
    let mut huge = out(Vec::new());
    huge.stdout = Captured::Blob { id: ContentId::of(b"o"), len: MAX_BLOB + 1 };
    assert!(huge.fits(&job).is_err());
}

#[test]
fn a_command_without_replacements_gets_the_input_last() {
    assert_eq!(expand(&words(&["echo", "-n"]), "a b", 1), words(&["echo", "-n", "a b"]));
    assert_eq!(expand(&words(&["cp", "{}", "{.}.bak"]), "x.txt", 1), words(&["cp", "x.txt", "x.bak"]));
}

#[test]
fn paths_that_travel_stay_inside() {
    for ok in ["a", "dir/a.txt", "./a", "a..b", "dir/.hidden"] {
        assert_eq!(check_path(ok), Ok(()), "{ok}");
    }
    assert!(matches!(check_path("/etc/passwd"), Err(PathError::Absolute(_))));
    assert!(matches!(check_path("../up"), Err(PathError::Parent(_))));
    assert!(matches!(check_path("a/../../b"), Err(PathError::Parent(_))));
    assert!(matches!(check_path(""), Err(PathError::Length { .. })));
}
