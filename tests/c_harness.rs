//! Runs the C and C++ programs in `c-tests/` against the freshly built `libpixcache.so`, as a C
//! user would link it: compiled with the system compiler (found by the `cc` crate) against
//! `include/`, linked with `-lpixcache` through its soname, and run as child processes, so a
//! crash fails one test instead of killing the runner.
//!
//! Set `PIXCACHE_TEST_WRAPPER` to run every program under a tool, e.g.
//! `PIXCACHE_TEST_WRAPPER="valgrind --error-exitcode=99 --leak-check=full" cargo test --test c_harness`.
//! Set `PIXCACHE_TEST_CFLAGS` to add compiler flags (e.g. sanitizers).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const VERSION: &str = env!("CARGO_PKG_VERSION");
const MAJOR: &str = env!("CARGO_PKG_VERSION_MAJOR");

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// target/<profile>: the test binary lives in target/<profile>/deps.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>")
        .to_path_buf()
}

/// Builds the shared library (`cargo test` builds only the rlib) and lays it out as an installed
/// one, in a directory of this process's own (several test runs may share a target dir):
/// libpixcache.so.X.Y.Z (a link to the built file), .so.X and .so links.
fn stage() -> &'static Path {
    static STAGE: OnceLock<PathBuf> = OnceLock::new();
    STAGE.get_or_init(|| {
        let profile = profile_dir();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        build
            .args(["build", "--lib", "--manifest-path"])
            .arg(manifest_dir().join("Cargo.toml"));
        if profile.file_name().is_some_and(|n| n == "release") {
            build.arg("--release");
        }
        let status = build.status().expect("cargo runs");
        assert!(status.success(), "cargo build --lib failed");
        let built = profile.join("libpixcache.so");
        assert!(built.exists(), "{} was not built", built.display());

        let runs = profile.join("c-tests");
        fs::create_dir_all(&runs).unwrap();
        for entry in fs::read_dir(&runs).unwrap().flatten() {
            let name = entry.file_name().into_string().unwrap_or_default();
            if let Some(pid) = name.strip_prefix("run-") {
                if !Path::new("/proc").join(pid).exists() {
                    let _ = fs::remove_dir_all(entry.path());
                }
            }
        }
        let stage = runs.join(format!("run-{}", std::process::id()));
        let lib = stage.join("lib");
        let _ = fs::remove_dir_all(&stage);
        fs::create_dir_all(&lib).unwrap();
        fs::create_dir_all(stage.join("bin")).unwrap();
        let real = format!("libpixcache.so.{VERSION}");
        std::os::unix::fs::symlink(&built, lib.join(&real)).unwrap();
        std::os::unix::fs::symlink(&real, lib.join(format!("libpixcache.so.{MAJOR}"))).unwrap();
        std::os::unix::fs::symlink(&real, lib.join("libpixcache.so")).unwrap();
        stage
    })
}

fn compiler(cpp: bool) -> Command {
    let target = env!("PIXCACHE_BUILD_TARGET");
    let tool = cc::Build::new()
        .cargo_metadata(false)
        .cargo_warnings(false)
        .target(target)
        .host(target)
        .opt_level(1)
        .debug(true)
        .cpp(cpp)
        .get_compiler();
    tool.to_command()
}

/// Compiles `c-tests/<name>` and returns the executable.
fn build(name: &str) -> PathBuf {
    let stage = stage();
    let src = manifest_dir().join("c-tests").join(name);
    let cpp = name.ends_with(".cpp");
    let exe = stage.join("bin").join(name.replace('.', "_"));
    let mut cmd = compiler(cpp);
    cmd.arg(if cpp { "-std=c++17" } else { "-std=c11" })
        .args(["-Wall", "-Wextra", "-Werror", "-pedantic", "-D_GNU_SOURCE"])
        .arg("-I")
        .arg(manifest_dir().join("include"))
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .arg("-L")
        .arg(stage.join("lib"))
        .arg("-lpixcache")
        .arg("-pthread")
        .arg(format!("-Wl,-rpath,{}", stage.join("lib").display()));
    if let Ok(flags) = std::env::var("PIXCACHE_TEST_CFLAGS") {
        cmd.args(flags.split_whitespace());
    }
    let out = cmd.output().expect("the C compiler runs");
    assert!(
        out.status.success(),
        "compiling {name} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    exe
}

/// Compiles and runs `c-tests/<name>` with `args`; fails the test on a non-zero exit or a signal.
///
/// Under a wrapper (valgrind) or extra compiler flags (sanitizers) the program runs with
/// `PIXCACHE_TEST_UNDER_TOOL=1`: those slow it down unevenly, so checks of time (how long a call
/// waited, how much CPU a waiter burnt, how fast a loop ran) report their figure instead of
/// failing, and long runs may be shortened. Everything else is checked as usual.
fn run(name: &str, args: &[&str]) -> String {
    let exe = build(name);
    let wrapper = std::env::var("PIXCACHE_TEST_WRAPPER").unwrap_or_default();
    let under_tool = !wrapper.trim().is_empty()
        || std::env::var("PIXCACHE_TEST_CFLAGS").is_ok_and(|f| !f.trim().is_empty());
    let mut words = wrapper.split_whitespace();
    let mut cmd = match words.next() {
        Some(tool) => {
            let mut c = Command::new(tool);
            c.args(words).arg(&exe);
            c
        }
        None => Command::new(&exe),
    };
    if under_tool {
        cmd.env("PIXCACHE_TEST_UNDER_TOOL", "1");
    }
    let out = cmd.args(args).output().expect("the test program starts");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{name} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

macro_rules! c_tests {
    ($($test:ident => $file:literal),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                print!("{}", run($file, &[]));
            }
        )*

        /// Every program in c-tests/ is run by some test above: none is silently skipped.
        #[test]
        fn every_c_program_is_run() {
            let listed = [$($file),*];
            for entry in fs::read_dir(manifest_dir().join("c-tests")).unwrap() {
                let name = entry.unwrap().file_name().into_string().unwrap();
                if name.ends_with(".c") || name.ends_with(".cpp") {
                    assert!(listed.contains(&name.as_str()), "c-tests/{name} is not run by c_harness.rs");
                }
            }
        }
    };
}

c_tests! {
    c_header_compiles_as_cpp17 => "header_cpp17.cpp",
    c_demo => "demo.c",
    c_rules => "test_rules.c",
    c_errors => "test_errors.c",
    c_foreign => "test_foreign.c",
    c_threads => "test_threads.c",
    c_fork => "test_fork.c",
    cpp_thread_exit => "test_thread_exit.cpp",
    c_flight => "test_flight.c",
    c_visit => "test_visit.c",
    cpp_api => "test_cpp_api.cpp",
    c_sandboxes => "test_sandboxes.c",
    c_waiting => "test_waiting.c",
    c_fork_threads => "test_fork_threads.c",
    c_cells => "test_cells.c",
    c_fork_deadlocks => "test_fork_deadlocks.c",
    c_pressure => "test_pressure.c",
    c_extras => "test_extras.c",
    c_local => "test_local.c",
    c_abi_v1 => "test_abi_v1.c",
    c_encode => "test_encode.c",
    c_animation => "test_animation.c",
    c_image_info => "test_image_info.c",
    c_formats => "test_formats.c",
}
