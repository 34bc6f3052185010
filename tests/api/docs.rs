//! The docs are executable (issue 24 items 2–6). The binary runs as the container image holds
//! it: `scripts/stage-image.sh` (what the Dockerfile's assets stage copies) beside a copy of
//! the binary and ONNX Runtime, started from an empty working folder with no model paths in
//! the environment. On a fresh database it serves, loads the demo data the way the README
//! says (`stylecast demo`), and then every `sh` example of the README and every example of
//! `stylecast <command> --help` must work against it.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use clap::CommandFactory;
use reqwest::multipart::{Form, Part};
use serde_json::Value;

use crate::helpers::fresh_database;

/// The image's /app in a temporary folder, and an empty folder to run from.
struct Layout {
    _root: tempfile::TempDir,
    app: PathBuf,
    work: PathBuf,
}

impl Layout {
    fn stage() -> Self {
        let root = tempfile::tempdir().expect("tempdir");
        let app = root.path().join("app");
        let staged = Command::new("bash")
            .arg("scripts/stage-image.sh")
            .arg(&app)
            .status()
            .expect("run scripts/stage-image.sh");
        assert!(
            staged.success(),
            "scripts/stage-image.sh failed (bash onnx/check.sh builds the assets)"
        );
        // A hard link keeps the binary's own path (current_exe) inside the layout; a symlink
        // would resolve back into target/.
        let bin = app.join("stylecast");
        if std::fs::hard_link(env!("CARGO_BIN_EXE_stylecast"), &bin).is_err() {
            std::fs::copy(env!("CARGO_BIN_EXE_stylecast"), &bin).expect("copy the binary");
        }
        // The image installs ONNX Runtime into /app/.ort (scripts/install-ort.sh).
        let library = std::env::var("ORT_DYLIB_PATH").unwrap_or_else(|_| ".ort/libonnxruntime.so".into());
        let library = std::fs::canonicalize(&library).unwrap_or_else(|e| panic!("{library}: {e}"));
        std::fs::create_dir(app.join(".ort")).expect("mkdir .ort");
        std::os::unix::fs::symlink(library, app.join(".ort/libonnxruntime.so")).expect("link the library");
        let work = root.path().join("work");
        std::fs::create_dir(&work).expect("mkdir work");
        Self { _root: root, app, work }
    }

    /// A shell in the working folder with the staged binary first on PATH and nothing that
    /// points at the checkout.
    fn shell(&self, database_url: &str, script: &str) -> Command {
        let mut command = Command::new("bash");
        command
            .args(["-c", script])
            .current_dir(&self.work)
            .env(
                "PATH",
                format!("{}:{}", self.app.display(), std::env::var("PATH").unwrap_or_default()),
            )
            .env("DATABASE_URL", database_url)
            .env("STYLECAST__LOG__FILTER", "info")
            .env_remove("ORT_DYLIB_PATH")
            .env_remove("STYLECAST_HOME")
            .env_remove("STYLECAST_CONFIG")
            .env_remove("REDIS_URL")
            .env_remove("RUST_LOG");
        command
    }
}

/// `stylecast serve`, killed when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

fn text(output: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The README's `sh` blocks, except the set-up and test commands (CI runs those itself).
fn readme_shell_blocks(readme: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in readme.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```sh") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), line) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks.retain(|block| !block.contains("./scripts/test.sh"));
    blocks
}

/// The indented lines under each "Example…:" heading of a help text.
fn help_examples(help: &str) -> Vec<String> {
    let mut examples = Vec::new();
    let mut in_examples = false;
    for line in help.lines() {
        if line.starts_with("Example") {
            in_examples = true;
        } else if in_examples && line.starts_with("  ") {
            examples.push(line.trim().to_string());
        } else {
            in_examples = false;
        }
    }
    examples
}

/// Every command path of the CLI (`["keys", "create"]`, …).
fn command_paths(command: &clap::Command, prefix: &[String], out: &mut Vec<Vec<String>>) {
    for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
        let mut path = prefix.to_vec();
        path.push(sub.get_name().to_string());
        out.push(path.clone());
        command_paths(sub, &path, out);
    }
}

/// The `mix` example the README's prose gives: "`mix` (`a=0.7,b=0.3`)".
fn readme_mix_example(readme: &str) -> String {
    readme
        .split("`mix` (`")
        .nth(1)
        .and_then(|rest| rest.split('`').next())
        .expect("the README gives a `mix` example")
        .to_string()
}

const PRELUDE: &str = r#"set -euo pipefail
# The reader's shell keeps KEY from the first block that sets it.
KEY="$DOCS_KEY"
# As the README's commands, but an HTTP error fails the example.
curl() { command curl --fail-with-body --show-error "$@"; }
# `<image_id>` in the README: a ready image of the user's feed.
ready_image() {
  for _ in $(seq 240); do
    id=$(command curl -sf "http://$DOCS_HOST/v1/users/$1/feed?k=10" -H "Authorization: Bearer $KEY" \
      | grep -o '/v1/images/[0-9a-f]*' | head -n 1 | sed 's#.*/##' || true)
    if [ -n "$id" ]; then echo "$id"; return 0; fi
    sleep 0.5
  done
  echo "no ready feed image for $1" >&2
  return 1
}
"#;

#[tokio::test]
async fn the_image_layout_from_an_empty_folder_runs_every_readme_and_help_example() {
    let layout = Layout::stage();
    let database_url = fresh_database().await;
    let port = free_port();
    let host = format!("127.0.0.1:{port}");
    let log = std::fs::File::create(layout.work.join("serve.log")).expect("log file");
    let _server = Server(
        layout
            .shell(&database_url, "exec stylecast serve")
            .env("STYLECAST__SERVER__PORT", port.to_string())
            .env("STYLECAST_ADMIN_KEY", format!("docs-admin-{}", uuid::Uuid::new_v4()))
            // The popularity ranking is refreshed in the background (10 min by default); the
            // cold-start check below must see the demo's engagement, not the empty start.
            .env("STYLECAST__EMBEDDING__POPULARITY_MAX_AGE_SECS", "0")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start stylecast serve"),
    );
    // No idle connections: the server closes them after its keep-alive while the demo loads,
    // and a reused one fails with IncompleteMessage.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(120))
        .build()
        .expect("client");
    let serve_log = || std::fs::read_to_string(layout.work.join("serve.log")).unwrap_or_default();
    let started = Instant::now();
    loop {
        let ready = client.get(format!("http://{host}/readyz")).send().await;
        if ready.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "not ready (every capability, generation included) within 120 s:\n{}",
            serve_log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // The README's demo command, as `docker compose exec stylecast stylecast demo` runs it.
    let demo = layout.shell(&database_url, "stylecast demo").output().expect("demo");
    assert!(demo.status.success(), "{}", text(&demo));
    let stderr = String::from_utf8_lossy(&demo.stderr);
    assert!(
        !stderr.contains("WARN"),
        "a first demo on a fresh database warns:\n{stderr}"
    );
    assert!(
        !stderr.contains("\x1b["),
        "logs to a file carry ANSI colour codes:\n{stderr}"
    );

    let key = layout
        .shell(
            &database_url,
            "stylecast keys create --name docs --scopes ingest,read,generate,admin",
        )
        .output()
        .expect("keys create");
    assert!(key.status.success(), "{}", text(&key));
    let key = String::from_utf8_lossy(&key.stdout).trim().to_string();

    // Issue 24 item 3: a cold-start user of the demo data gets a real blend.
    let interests: Value = client
        .get(format!("http://{host}/v1/users/never_seen_zz/interests"))
        .bearer_auth(&key)
        .send()
        .await
        .expect("interests")
        .json()
        .await
        .expect("json");
    let weights: Vec<f64> = interests["blend"]["weights"]
        .as_array()
        .expect("weights")
        .iter()
        .filter_map(|w| w["weight"].as_f64())
        .collect();
    assert!(weights.len() >= 4, "{interests}");
    assert!(weights.iter().all(|w| (0.05..=0.6).contains(w)), "{interests}");

    let photo = image::open("onnx/styles/content_heldout/coffee.png").expect("content photo");
    photo.to_rgb8().save(layout.work.join("me.jpg")).expect("write me.jpg");
    let me = std::fs::read(layout.work.join("me.jpg")).expect("me.jpg");

    let readme = std::fs::read_to_string("README.md").expect("README.md");
    let blocks = readme_shell_blocks(&readme);
    assert!(blocks.len() >= 3, "README sh blocks: {blocks:?}");
    for block in &blocks {
        let script = block
            .replace("localhost:8080", &host)
            .replace("<image_id>", "$(ready_image ana)")
            .lines()
            .map(|line| {
                if line.starts_with("KEY=...") {
                    "KEY=\"$DOCS_KEY\""
                } else {
                    line
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        let output = layout
            .shell(&database_url, &format!("{PRELUDE}{script}"))
            .env("DOCS_KEY", &key)
            .env("DOCS_HOST", &host)
            // The README's analyst connection, to this test's database.
            .env(
                "ANALYST_URL",
                database_url.replace("postgres://postgres@", "postgres://stylecast_analyst@"),
            )
            .output()
            .expect("bash");
        assert!(
            output.status.success(),
            "README example failed:\n{block}\n{}",
            text(&output)
        );
    }

    // Issue 24 item 2: the `mix` examples of the README and the OpenAPI document work.
    let openapi: Value = client
        .get(format!("http://{host}/openapi.json"))
        .send()
        .await
        .expect("openapi")
        .json()
        .await
        .expect("json");
    let documented = openapi["components"]["schemas"]["GenerateForm"]["properties"]["mix"]["example"]
        .as_str()
        .expect("GenerateForm.mix has an example")
        .to_string();
    for mix in [readme_mix_example(&readme), documented] {
        let form = Form::new()
            .part("photo", Part::bytes(me.clone()).file_name("me.jpg"))
            .text("user", "ana")
            .text("mix", mix.clone());
        let response = client
            .post(format!("http://{host}/v1/generate"))
            .bearer_auth(&key)
            .multipart(form)
            .send()
            .await
            .expect("generate");
        let status = response.status().as_u16();
        let blend = response
            .headers()
            .get("x-blend")
            .map(|v| v.to_str().unwrap_or_default().to_string());
        assert_eq!(status, 200, "mix {mix}: {}", response.text().await.unwrap_or_default());
        let blend: Value = serde_json::from_str(&blend.unwrap_or_default()).expect("X-Blend is JSON");
        for part in mix.split(',') {
            let id = part.split('=').next().unwrap_or_default();
            assert!(blend.get(id).is_some(), "mix {mix}: X-Blend {blend}");
        }
    }

    // Every example of every `--help`, run as shown.
    let mut paths = Vec::new();
    command_paths(&stylecast::cli::Cli::command(), &[], &mut paths);
    let mut examples = Vec::new();
    for path in &paths {
        let help = layout
            .shell(&database_url, &format!("stylecast {} --help", path.join(" ")))
            .output()
            .expect("help");
        assert!(help.status.success(), "{path:?}: {}", text(&help));
        examples.extend(help_examples(&String::from_utf8_lossy(&help.stdout)));
    }
    assert!(examples.len() >= 7, "help examples: {examples:?}");
    for example in &examples {
        let output = layout
            .shell(&database_url, &format!("set -euo pipefail\n{example}"))
            .output()
            .expect("bash");
        assert!(
            output.status.success(),
            "`--help` example failed: {example}\n{}",
            text(&output)
        );
    }
    for written in ["ana.png", "nadia.jpg", "mix.webp"] {
        let image = image::open(layout.work.join(written)).unwrap_or_else(|e| panic!("{written}: {e}"));
        assert!(image.width().max(image.height()) >= 256, "{written}");
    }
}

#[test]
fn the_extractors_find_what_they_are_meant_to() {
    let readme = "intro\n```sh\n./scripts/run.sh\n./scripts/test.sh\n```\n`mix` (`a=0.7,b=0.3`)\n```sh\ncurl x\n```\n```\ndiagram\n```\n";
    assert_eq!(readme_shell_blocks(readme), vec!["curl x\n".to_string()]);
    assert_eq!(readme_mix_example(readme), "a=0.7,b=0.3");
    let help = "Usage: x\n\nExamples (y):\n  stylecast a\n  stylecast b\n\nOptions:\n  --x\n";
    assert_eq!(help_examples(help), vec!["stylecast a", "stylecast b"]);
}
