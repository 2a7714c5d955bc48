//! The supervisors' command line, run as the real binary against a running
//! server: `apply` of a centre file, managing entries, statistics, the
//! `top` wallboard, supervisor actions and reports, as tables and as JSON.

mod common;

use common::centre::SUPPORT;
use common::sessions::{AgentClient, BridgeClient, Report};
use common::{TestServer, sqlite};
use serde_json::Value;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use switchboard::proto::v1 as pb;
use tokio::io::AsyncReadExt;

/// What one run of the binary printed.
struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|error| panic!("not JSON ({error}): {}", self.stdout))
    }
}

/// Runs `switchboard ARGS --server http://ADDR` and waits for it.
async fn switchboard(server: &TestServer, args: &[&str]) -> Run {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(args)
        .arg("--server")
        .arg(format!("http://{}", server.grpc_addr))
        .env("SWITCHBOARD_ACTOR", "carol")
        .output()
        .await
        .expect("the binary runs");
    Run {
        ok: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

const CENTRE: &str = "\
skills:
  - name: billing
    description: Billing questions
  - name: lang:fr
queues:
  - id: support
    steps:
      - requirements: { billing: 3 }
        duration_secs: 30
      - requirements: { billing: 1 }
    wrap_up_secs: 5
    limits:
      max_waiting: 100
      when_full: { overflow: sales }
  - id: sales
entry_points:
  - address: sip:support@contoso.example
    queue: support
agents:
  - id: alice
    display_name: Alice
    uc_address: sip:alice@contoso.example
    skills: { billing: 4, lang:fr: 2 }
    queues: [support, sales]
";

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("the temporary file is written");
    path.display().to_string()
}

/// The `action` of each row of an apply's JSON output, as `kind id action`.
fn actions(run: &Run) -> Vec<String> {
    assert!(run.ok, "apply failed: {}", run.stderr);
    let mut out = Vec::new();
    for row in run.json().as_array().expect("an array of changes") {
        out.push(format!(
            "{} {} {}",
            row["kind"].as_str().unwrap(),
            row["id"].as_str().unwrap(),
            row["action"].as_str().unwrap()
        ));
    }
    out
}

#[tokio::test]
async fn apply_creates_the_centre_then_changes_only_what_differs() {
    let backend = sqlite();
    let server = TestServer::start(&backend.url).await;
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "centre.yaml", CENTRE);

    let first = switchboard(&server, &["apply", "-f", &file, "--json"]).await;
    assert_eq!(
        actions(&first),
        [
            "skill billing created",
            "skill lang:fr created",
            "queue support created",
            "queue sales created",
            "entry point sip:support@contoso.example created",
            "agent alice created",
        ]
    );
    let again = switchboard(&server, &["apply", "-f", &file, "--json"]).await;
    assert!(
        actions(&again)
            .iter()
            .all(|row| row.ends_with(" unchanged")),
        "{:?}",
        actions(&again)
    );

    let changed = write(
        dir.path(),
        "centre.yaml",
        &CENTRE.replace("wrap_up_secs: 5", "wrap_up_secs: 20"),
    );
    let dry = switchboard(&server, &["apply", "-f", &changed, "--dry-run", "--json"]).await;
    assert!(actions(&dry).contains(&"queue support updated".to_string()));
    let table = switchboard(&server, &["apply", "-f", &changed]).await;
    assert!(table.ok, "{}", table.stderr);
    assert!(
        table.stdout.starts_with("KIND") && table.stdout.contains("queue        support"),
        "a readable table: {}",
        table.stdout
    );
    assert!(
        table
            .stdout
            .lines()
            .any(|line| line.contains("support") && line.ends_with("updated")),
        "{}",
        table.stdout
    );

    let queue = switchboard(&server, &["queues", "get", "support"])
        .await
        .json();
    assert_eq!(queue["wrap_up_secs"], 20);
    assert_eq!(queue["limits"]["max_waiting"], 100);
    let queues = switchboard(&server, &["queues", "list", "--json"])
        .await
        .json();
    let ids: Vec<&str> = queues
        .as_array()
        .unwrap()
        .iter()
        .map(|queue| queue["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&"support") && ids.contains(&"sales"));
    let agents = switchboard(&server, &["agents", "list"]).await;
    assert!(agents.stdout.contains("alice") && agents.stdout.contains("Alice"));
    let entries = switchboard(&server, &["entry-points", "list", "--json"])
        .await
        .json();
    assert_eq!(entries[0]["queue"], "support");
    let skills = switchboard(&server, &["skills", "list", "--json"])
        .await
        .json();
    assert_eq!(skills[0]["description"], "Billing questions");

    let held = switchboard(&server, &["skills", "delete", "billing"]).await;
    assert!(!held.ok, "a held skill cannot be deleted");
    assert!(held.stderr.contains("billing"), "{}", held.stderr);
    let missing = switchboard(&server, &["queues", "get", "nowhere"]).await;
    assert!(
        !missing.ok && missing.stderr.contains("NotFound"),
        "{}",
        missing.stderr
    );
    server.stop().await;
}

#[tokio::test]
async fn an_invalid_file_is_refused_with_its_line_and_field_and_nothing_is_applied() {
    let backend = sqlite();
    let server = TestServer::start(&backend.url).await;
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "centre.yaml",
        &CENTRE.replace("billing: 1 }", "billing: 9 }"),
    );
    let refused = switchboard(&server, &["apply", "-f", &file]).await;
    assert!(!refused.ok);
    assert!(
        refused.stderr.contains(
            "queues[0].steps[1].requirements: proficiency must be between 1 and 5, got 9"
        ) && refused.stderr.contains("line 10"),
        "{}",
        refused.stderr
    );
    let toml = write(
        dir.path(),
        "centre.toml",
        "[[queues]]\nid = \"support\"\nsl_target = 2.0\n",
    );
    let refused = switchboard(&server, &["apply", "-f", &toml]).await;
    assert!(!refused.ok);
    assert!(
        refused.stderr.contains("line 1") && refused.stderr.contains("sl_target"),
        "{}",
        refused.stderr
    );
    let queues = switchboard(&server, &["queues", "list", "--json"])
        .await
        .json();
    assert_eq!(queues, serde_json::json!([]));
    server.stop().await;
}

#[tokio::test]
async fn statistics_the_wallboard_and_actions_work_against_live_traffic() {
    let backend = sqlite();
    let server = TestServer::start(&backend.url).await;
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "centre.yaml", CENTRE);
    assert!(switchboard(&server, &["apply", "-f", &file]).await.ok);

    // Nobody is signed in: both calls wait.
    let mut bridge = BridgeClient::open(server.channel().await).await;
    let first = bridge.submit("call-1", pb::Channel::Voice, SUPPORT).await;
    let second = bridge.submit("call-2", pb::Channel::Chat, SUPPORT).await;

    let stats = switchboard(&server, &["stats", "--json"]).await.json();
    let voice = stats
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["queue"] == "support" && row["channel"] == "voice")
        .expect("a support voice row");
    assert_eq!(
        (voice["waiting"].as_u64(), voice["offered"].as_u64()),
        (Some(1), Some(1))
    );

    let priority = switchboard(&server, &["reprioritise", &first.work_item_id, "-5"]).await;
    assert!(priority.ok, "{}", priority.stderr);
    let moved = switchboard(&server, &["move", &second.work_item_id, "sales", "--json"]).await;
    let audit = moved.json()[0]["audit_id"].as_i64().expect("an audit id");
    assert!(audit > 0);
    let cancelled = switchboard(
        &server,
        &["cancel", &second.work_item_id, "--reason", "spam"],
    )
    .await;
    assert!(cancelled.ok, "{}", cancelled.stderr);

    let mut alice = AgentClient::sign_in(server.channel().await, "alice", false).await;
    let assigned = switchboard(&server, &["assign", &first.work_item_id, "alice"]).await;
    assert!(assigned.ok, "{}", assigned.stderr);
    let offer = alice.offer().await;
    assert_eq!(offer.work_item_id, first.work_item_id);

    let frame = switchboard(&server, &["top", "--once"]).await;
    assert!(frame.ok, "{}", frame.stderr);
    assert!(
        frame.stdout.starts_with("switchboard top"),
        "{}",
        frame.stdout
    );
    assert!(
        frame.stdout.contains("\nalice  reserved"),
        "alice has an offer: {}",
        frame.stdout
    );
    let board = switchboard(&server, &["top", "--once", "--json"])
        .await
        .json();
    assert_eq!(board["agents"][0]["agent"], "alice");

    let forced = switchboard(
        &server,
        &["force-state", "alice", "not-ready", "--reason", "coaching"],
    )
    .await;
    assert!(forced.ok, "{}", forced.stderr);
    // The offer rings on; once Alice declines it she is not ready.
    let agents = switchboard(&server, &["stats", "agents", "--json"])
        .await
        .json();
    assert_eq!(agents[0]["state"], "reserved");
    let decline = pb::agent_message::Kind::Decline(pb::DeclineOffer {
        work_item_id: offer.work_item_id.clone(),
        reason: String::new(),
    });
    alice.request(decline, tonic::Code::Ok).await;
    alice.state(pb::RoutingState::NotReady).await;
    let agents = switchboard(&server, &["stats", "agents", "--json"])
        .await
        .json();
    assert_eq!(agents[0]["state"], "not_ready (coaching)");
    let refused = switchboard(&server, &["force-state", "alice", "not-ready"]).await;
    assert!(
        !refused.ok && refused.stderr.contains("reason"),
        "{}",
        refused.stderr
    );
    drop(alice);
    server.stop().await;

    let store = switchboard::store::connect(&backend.url).await.unwrap();
    let log = store.audit_log(0, 100).await.unwrap();
    let actions: Vec<(&str, &str)> = log
        .iter()
        .filter(|entry| entry.actor == "carol")
        .map(|entry| (entry.action.as_str(), entry.actor.as_str()))
        .collect();
    for action in [
        "reprioritise_work_item",
        "move_work_item",
        "cancel_work_item",
        "assign_work_item",
        "force_agent_state",
    ] {
        assert!(
            actions.iter().any(|(done, _)| *done == action),
            "{action} audited as carol: {actions:?}"
        );
    }
    store.close().await;
}

#[tokio::test]
async fn report_prints_the_day_from_the_database_and_refuses_a_bad_bound() {
    let backend = sqlite();
    let server = TestServer::start(&backend.url).await;
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "centre.yaml", CENTRE);
    assert!(switchboard(&server, &["apply", "-f", &file]).await.ok);
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();

    // Nobody is signed in: the caller waits, then hangs up.
    let mut bridge = BridgeClient::open(server.channel().await).await;
    let call = bridge.submit("call-1", pb::Channel::Voice, SUPPORT).await;
    let ack = bridge
        .report(Report::ConsumerHungUp(pb::ConsumerHungUp {
            work_item_id: call.work_item_id,
        }))
        .await;
    assert_eq!(ack.code, 0, "{ack:?}");

    let args = ["report", "--from", &today, "--interval", "day"];
    let json = switchboard(&server, &[&args[..], &["--json"]].concat()).await;
    assert!(json.ok, "{}", json.stderr);
    let rows = json.json();
    let row = &rows.as_array().expect("an array of rows")[0];
    assert_eq!(
        (
            &row["queue"],
            &row["channel"],
            &row["offered"],
            &row["abandoned"]
        ),
        (
            &Value::from("support"),
            &Value::from("voice"),
            &Value::from(1),
            &Value::from(1)
        )
    );
    assert_eq!(row["short_abandons"], 1);
    assert_eq!(row["start"], format!("{today} 00:00"));
    let table = switchboard(&server, &args).await;
    assert!(
        table.stdout.starts_with("START") && table.stdout.contains("support  voice"),
        "{}",
        table.stdout
    );

    let bad = switchboard(&server, &["report", "--from", "yesterday"]).await;
    assert!(!bad.ok && bad.stderr.contains("--from"), "{}", bad.stderr);
    let backwards = switchboard(&server, &["report", "--from", &today, "--to", "2020-01-01"]).await;
    assert!(
        !backwards.ok && backwards.stderr.contains("to: must be after from"),
        "{}",
        backwards.stderr
    );
    server.stop().await;
}

/// Reads the wallboard's output until it contains `wanted`, for at most 20 s.
async fn frame_with(output: &mut tokio::process::ChildStdout, seen: &mut String, wanted: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut buffer = [0u8; 4096];
    while !seen.contains(wanted) {
        let read = tokio::time::timeout_at(deadline, output.read(&mut buffer))
            .await
            .unwrap_or_else(|_| panic!("no frame with {wanted:?} in: {seen}"))
            .expect("the wallboard's output can be read");
        assert!(read > 0, "the wallboard ended early: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buffer[..read]));
    }
}

#[tokio::test]
async fn the_live_wallboard_redraws_as_the_watch_stream_changes() {
    let backend = sqlite();
    let server = TestServer::start(&backend.url).await;
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "centre.yaml", CENTRE);
    assert!(switchboard(&server, &["apply", "-f", &file]).await.ok);

    let mut top = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["top", "--server", &format!("http://{}", server.grpc_addr)])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the wallboard starts");
    let mut output = top.stdout.take().expect("piped");
    let mut seen = String::new();
    frame_with(&mut output, &mut seen, "waiting 0").await;

    let mut bridge = BridgeClient::open(server.channel().await).await;
    bridge.submit("call-1", pb::Channel::Voice, SUPPORT).await;
    seen.clear();
    frame_with(&mut output, &mut seen, "waiting 1").await;
    assert!(
        seen.contains("\x1b[2J\x1b[H"),
        "each frame clears the screen"
    );

    let _alice = AgentClient::sign_in(server.channel().await, "alice", false).await;
    seen.clear();
    frame_with(&mut output, &mut seen, "\nalice  not_ready").await;
    top.kill().await.expect("the wallboard stops");
    server.stop().await;
}

#[tokio::test]
async fn every_kind_can_be_shown_and_deleted() {
    let backend = sqlite();
    let server = TestServer::start(&backend.url).await;
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "centre.yaml", CENTRE);
    assert!(switchboard(&server, &["apply", "-f", &file]).await.ok);

    let skill = switchboard(&server, &["skills", "get", "billing"])
        .await
        .json();
    assert_eq!(skill["description"], "Billing questions");
    let entry = switchboard(&server, &["entry-points", "get", SUPPORT])
        .await
        .json();
    assert_eq!(entry["queue"], "support");
    let agent = switchboard(&server, &["agents", "get", "alice"])
        .await
        .json();
    assert_eq!(agent["display_name"], "Alice");
    assert_eq!(agent["queues"], serde_json::json!(["sales", "support"]));

    // Each deletion is refused while something still refers to the entry.
    let refused = switchboard(&server, &["queues", "delete", "support"]).await;
    assert!(!refused.ok, "the entry point still uses queue support");
    for (kind, id) in [
        ("agents", "alice"),
        ("entry-points", SUPPORT),
        ("queues", "support"),
        ("queues", "sales"),
        ("skills", "billing"),
        ("skills", "lang:fr"),
    ] {
        let deleted = switchboard(&server, &[kind, "delete", id, "--json"]).await;
        assert!(deleted.ok, "deleting {kind} {id}: {}", deleted.stderr);
        assert_eq!(deleted.json()[0]["action"], "deleted");
        let gone = switchboard(&server, &[kind, "list", "--json"]).await.json();
        let ids = gone.to_string();
        assert!(
            !ids.contains(&format!("\"{id}\"")),
            "{kind} {id} is gone: {ids}"
        );
    }
    server.stop().await;
}
