//! The dashboards and alert rules of `dashboards/` against a real Prometheus
//! (the Debian package `prometheus`, with `promtool`): Switchboard runs
//! in-process, traffic goes through gRPC, Prometheus scrapes it, and every
//! panel expression, template variable, documented query and alert rule must
//! return data. The scrape passes `promtool check metrics`, the rules pass
//! `promtool check rules` and their unit tests, and the service level the
//! overview dashboard computes is the one the scripted traffic implies and
//! the one the interval report computes from the database.

mod common;

use common::centre::{Centre, SUPPORT, agent, support_queue};
use common::sessions::{
    AgentClient, AgentKind, AgentKind2, BridgeClient, Report, interaction_request,
};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use switchboard::config::ServeConfig;
use switchboard::proto::v1 as pb;
use tempfile::TempDir;
use tonic::Code;

/// Longest wait for Prometheus to see something: a hang guard, not a timing assertion.
const PATIENCE: Duration = Duration::from_secs(60);

/// The service-level threshold, in seconds, of the test's queues on voice.
const THRESHOLD: i32 = 2;

/// What the dashboards' built-in Grafana variables become: every window is
/// longer than the test, so rates cover all of its traffic.
const GRAFANA_BUILTINS: [(&str, &str); 3] = [
    ("$__rate_interval", "10m"),
    ("$__range", "10m"),
    ("$__interval", "15s"),
];

/// Where the repository's files are.
fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The named program on `PATH`. In CI a missing one is a failure; elsewhere
/// the caller skips with a warning.
fn program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file());
    if found.is_none() {
        common::skipped_outside_ci(
            &format!("{name} is not installed"),
            "the live Prometheus test is skipped (scripts/test installs the debian package prometheus)",
        );
    }
    found
}

/// Percent-encodes a query-string value.
fn encode(value: &str) -> String {
    let mut encoded = String::new();
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// Escapes a label value for a regular-expression matcher, as Grafana does
/// for the values of a multi-value variable.
fn regex_escape(value: &str) -> String {
    let mut escaped = String::new();
    for c in value.chars() {
        if r"\.+*?()|[]{}^$".contains(c) {
            // A regex backslash, itself escaped inside a PromQL string.
            escaped.push_str(r"\\");
        }
        escaped.push(c);
    }
    escaped
}

/// A sample of an instant query: its labels and value.
struct Sample {
    metric: serde_json::Map<String, Value>,
    value: f64,
}

/// A Prometheus server started for one test, from `dashboards/prometheus.yml`.
struct Prometheus {
    /// Killed first when dropped, before its directory goes.
    _process: tokio::process::Child,
    addr: SocketAddr,
    dir: TempDir,
}

impl Prometheus {
    /// Starts Prometheus scraping `target` every second with the alert rules
    /// loaded, on a free loopback port, and waits until it is ready.
    async fn start(binary: &Path, target: SocketAddr) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory can be made");
        let example = std::fs::read_to_string(repo("dashboards/prometheus.yml"))
            .expect("dashboards/prometheus.yml is readable");
        let mut config: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(&example).expect("dashboards/prometheus.yml is YAML");
        for key in ["scrape_interval", "evaluation_interval", "scrape_timeout"] {
            config["global"][key] = "1s".into();
        }
        let rules = repo("dashboards/alerts.yml").display().to_string();
        config["rule_files"] = serde_yaml_ng::Value::Sequence(vec![rules.into()]);
        config["scrape_configs"][0]["static_configs"][0]["targets"] =
            serde_yaml_ng::Value::Sequence(vec![target.to_string().into()]);
        let config_file = dir.path().join("prometheus.yml");
        std::fs::write(
            &config_file,
            serde_yaml_ng::to_string(&config).expect("a YAML value serialises"),
        )
        .expect("the configuration can be written");
        // Binding port 0 picks a port nobody holds, not even a Prometheus
        // the Debian package may have started on 9090.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a loopback port can be bound");
        let log = std::fs::File::create(dir.path().join("prometheus.log"))
            .expect("the log file can be made");
        let process = tokio::process::Command::new(binary)
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("prometheus starts");
        let prometheus = Self {
            addr,
            dir,
            _process: process,
        };
        prometheus
            .wait_until("prometheus is ready", async || {
                matches!(common::http_get(addr, "/-/ready").await, Ok((200, _)))
            })
            .await;
        prometheus
    }

    /// Polls `done` until it is true; panics with Prometheus' log after PATIENCE.
    async fn wait_until(&self, what: &str, mut done: impl AsyncFnMut() -> bool) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while !done().await {
            if tokio::time::Instant::now() > deadline {
                let log = std::fs::read_to_string(self.dir.path().join("prometheus.log"))
                    .unwrap_or_default();
                panic!("timed out waiting until {what}; prometheus log:\n{log}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// GETs an API path and returns its `data`, asserting success.
    async fn api(&self, path: &str) -> Value {
        let (status, body) = common::http_get(self.addr, path)
            .await
            .expect("prometheus answers");
        let answer: Value = serde_json::from_str(&body)
            .unwrap_or_else(|error| panic!("{path}: not JSON ({error}): {body}"));
        assert!(
            status == 200 && answer["status"] == "success",
            "{path}: {status} {body}"
        );
        answer["data"].clone()
    }

    /// Evaluates `expr` now and returns its samples.
    async fn query(&self, expr: &str) -> Vec<Sample> {
        let data = self
            .api(&format!("/api/v1/query?query={}", encode(expr)))
            .await;
        let value = |pair: &Value| -> f64 {
            let text = pair[1].as_str().expect("a sample value is a string");
            text.parse().expect("a sample value is a number")
        };
        match data["resultType"].as_str() {
            Some("vector") => data["result"]
                .as_array()
                .expect("a vector is an array")
                .iter()
                .map(|sample| Sample {
                    metric: sample["metric"].as_object().cloned().unwrap_or_default(),
                    value: value(&sample["value"]),
                })
                .collect(),
            Some("scalar") => vec![Sample {
                metric: serde_json::Map::new(),
                value: value(&data["result"]),
            }],
            other => panic!("{expr}: unexpected result type {other:?}"),
        }
    }

    /// Waits until `expr` returns at least one sample.
    async fn wait_for(&self, expr: &str) {
        self.wait_until(&format!("`{expr}` returns data"), async || {
            !self.query(expr).await.is_empty()
        })
        .await;
    }

    /// Evaluates `expr` and asserts it returns data with a number in it
    /// (not only NaN: 0 / 0 is not a working panel).
    async fn assert_data(&self, what: &str, expr: &str) -> Vec<Sample> {
        let samples = self.query(expr).await;
        assert!(
            samples.iter().any(|sample| sample.value.is_finite()),
            "{what} returns no data:\n{expr}\ngot {} samples, none finite",
            samples.len()
        );
        samples
    }

    /// The values of `label` on series matching `selector`, as Grafana's
    /// `label_values(selector, label)` asks for them.
    async fn label_values(&self, selector: &str, label: &str) -> Vec<String> {
        let data = self
            .api(&format!(
                "/api/v1/label/{label}/values?match[]={}",
                encode(selector)
            ))
            .await;
        data.as_array()
            .expect("label values are an array")
            .iter()
            .map(|value| value.as_str().expect("a label value").to_string())
            .collect()
    }
}

/// Runs promtool with `args` (and `stdin`, if any) in `dashboards/`; panics
/// with its output unless it succeeds.
async fn promtool(binary: &Path, args: &[&str], stdin: Option<&str>) {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new(binary)
        .args(args)
        .current_dir(repo("dashboards"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("promtool starts");
    let mut input = child.stdin.take().expect("stdin is piped");
    input
        .write_all(stdin.unwrap_or_default().as_bytes())
        .await
        .expect("promtool reads its input");
    drop(input);
    let output = child.wait_with_output().await.expect("promtool runs");
    assert!(
        output.status.success(),
        "promtool {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Every dashboard in `dashboards/grafana/`, by file name.
fn dashboards() -> Vec<(String, Value)> {
    let mut boards = Vec::new();
    let dir = repo("dashboards/grafana");
    for entry in std::fs::read_dir(&dir).expect("dashboards/grafana is readable") {
        let path = entry.expect("a directory entry").path();
        if path.extension().is_some_and(|ext| ext == "json") {
            let text = std::fs::read_to_string(&path).expect("a dashboard is readable");
            let board = serde_json::from_str(&text)
                .unwrap_or_else(|error| panic!("{}: not JSON: {error}", path.display()));
            let name = path.file_name().expect("a file name").to_string_lossy();
            boards.push((name.into_owned(), board));
        }
    }
    boards.sort_by(|a, b| a.0.cmp(&b.0));
    boards
}

/// The panels of a dashboard, rows' nested panels included, rows left out.
fn panels(board: &Value) -> Vec<&Value> {
    let mut found = Vec::new();
    let mut pending: Vec<&Value> = board["panels"].as_array().into_iter().flatten().collect();
    while let Some(panel) = pending.pop() {
        if panel["type"] == "row" {
            pending.extend(panel["panels"].as_array().into_iter().flatten());
        } else {
            found.push(panel);
        }
    }
    found
}

/// Replaces `$name` and `${name}` of each variable, then Grafana's built-ins;
/// asserts nothing is left to replace.
fn expand(expr: &str, variables: &[(String, String)]) -> String {
    let mut expanded = expr.to_string();
    // Longest names first, so that `$queue` never eats part of `$queues`.
    let mut all: Vec<(String, String)> = variables.to_vec();
    for (name, value) in GRAFANA_BUILTINS {
        all.push((name.trim_start_matches('$').to_string(), value.to_string()));
    }
    all.sort_by_key(|(name, _)| std::cmp::Reverse(name.len()));
    for (name, value) in &all {
        expanded = expanded
            .replace(&format!("${{{name}}}"), value)
            .replace(&format!("${name}"), value);
    }
    assert!(!expanded.contains('$'), "an unknown variable in {expr}");
    expanded
}

/// The `promql` code blocks of a Markdown file.
fn promql_blocks(path: &str) -> Vec<String> {
    let text = std::fs::read_to_string(repo(path)).expect("the document is readable");
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        match (&mut current, line.trim()) {
            (None, "```promql") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

#[test]
fn dashboards_are_current_grafana_json_on_the_datasource_variable() {
    for (file, list) in [
        (
            "dashboards/provisioning/datasources/prometheus.yml",
            "datasources",
        ),
        (
            "dashboards/provisioning/dashboards/switchboard.yml",
            "providers",
        ),
    ] {
        let text = std::fs::read_to_string(repo(file)).expect("a provisioning file is readable");
        let provisioning: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(&text).unwrap_or_else(|error| panic!("{file}: {error}"));
        assert_eq!(provisioning["apiVersion"], 1, "{file}");
        assert!(provisioning[list][0].is_mapping(), "{file}: no {list}");
    }
    let boards = dashboards();
    let titles: Vec<&str> = boards
        .iter()
        .map(|(_, board)| board["title"].as_str().expect("a title"))
        .collect();
    for wanted in [
        "Contact centre overview",
        "Queue detail",
        "Agents",
        "Switchboard internals",
    ] {
        assert!(
            titles.contains(&wanted),
            "no dashboard {wanted}: {titles:?}"
        );
    }
    let mut uids = std::collections::HashSet::new();
    for (name, board) in &boards {
        let uid = board["uid"].as_str().expect("a uid");
        assert!(uids.insert(uid.to_string()), "{name}: uid {uid} is taken");
        let schema = board["schemaVersion"].as_i64().expect("a schema version");
        assert!(
            (39..=41).contains(&schema),
            "{name}: schemaVersion {schema}"
        );
        let variables = board["templating"]["list"]
            .as_array()
            .expect("templating.list");
        let datasource = variables
            .iter()
            .find(|variable| variable["type"] == "datasource")
            .unwrap_or_else(|| panic!("{name}: no datasource variable"));
        assert_eq!(datasource["name"], "datasource", "{name}");
        assert_eq!(datasource["query"], "prometheus", "{name}");
        for variable in variables.iter().filter(|v| v["type"] == "query") {
            assert_eq!(
                variable["datasource"]["uid"], "${datasource}",
                "{name}: variable {}",
                variable["name"]
            );
            let query = variable["query"]["query"]
                .as_str()
                .expect("a variable query");
            assert!(query.starts_with("label_values("), "{name}: {query}");
        }
        if board["tags"]
            .as_array()
            .is_some_and(|tags| tags.contains(&"contact-centre".into()))
        {
            for wanted in ["queue", "channel"] {
                assert!(
                    variables
                        .iter()
                        .any(|v| v["type"] == "query" && v["name"] == wanted),
                    "{name}: no {wanted} variable"
                );
            }
        }
        let mut ids = std::collections::HashSet::new();
        for panel in panels(board) {
            let title = panel["title"].as_str().expect("a panel title");
            assert!(
                ids.insert(panel["id"].as_i64()),
                "{name}: {title}: id taken"
            );
            assert_eq!(
                panel["datasource"],
                serde_json::json!({"type": "prometheus", "uid": "${datasource}"}),
                "{name}: {title}"
            );
            let targets = panel["targets"].as_array().expect("targets");
            assert!(!targets.is_empty(), "{name}: {title} has no query");
            for target in targets {
                assert_eq!(target["datasource"], panel["datasource"], "{name}: {title}");
                assert!(
                    target["expr"].as_str().is_some_and(|expr| !expr.is_empty()),
                    "{name}: {title}: a target without an expression"
                );
            }
        }
    }
}

/// Serves the offer that comes next to `agent` and tells the bridge the call
/// connected; returns the work item's id.
async fn answer(agent: &mut AgentClient, bridge: &mut BridgeClient) -> String {
    let offer = agent.offer().await;
    agent.accept(&offer.work_item_id).await;
    bridge.delivery(&offer.work_item_id).await;
    let connected = Report::Connected(pb::InteractionConnected {
        work_item_id: offer.work_item_id.clone(),
    });
    assert_eq!(bridge.report(connected).await.code, 0);
    offer.work_item_id
}

/// Ends a connected item and finishes its wrap-up at once.
async fn hang_up(agent: &mut AgentClient, bridge: &mut BridgeClient, item: &str) {
    let ended = Report::Ended(pb::InteractionEnded {
        work_item_id: item.into(),
    });
    assert_eq!(bridge.report(ended).await.code, 0);
    agent
        .event("item ended", |kind| matches!(kind, AgentKind::ItemEnded(_)))
        .await;
    agent
        .request(AgentKind2::WrapUpDone(pb::WrapUpDone {}), Code::Ok)
        .await;
}

/// Submits an interaction to a named queue.
async fn submit_to(
    bridge: &mut BridgeClient,
    interaction: &str,
    queue: &str,
) -> Result<tonic::Response<pb::SubmitInteractionResponse>, tonic::Status> {
    let mut request = interaction_request(interaction, pb::Channel::Voice, SUPPORT);
    request.queue = queue.into();
    bridge.client.submit_interaction(request).await
}

/// A queue for this test: threshold THRESHOLD on voice, and `limits`.
fn queue(id: &str, limits: pb::QueueLimits) -> pb::Queue {
    pb::Queue {
        id: id.into(),
        sl_thresholds: Some(pb::ChannelThresholds {
            voice: THRESHOLD,
            chat: 60,
            video: 20,
        }),
        limits: Some(limits),
        ..support_queue()
    }
}

/// A disposition of a queue limit.
fn disposition(kind: pb::disposition::Kind) -> Option<pb::Disposition> {
    Some(pb::Disposition { kind: Some(kind) })
}

#[tokio::test]
async fn every_panel_and_alert_rule_returns_data_from_a_real_prometheus() {
    let (Some(prometheus_bin), Some(promtool_bin)) = (program("prometheus"), program("promtool"))
    else {
        return;
    };
    promtool(&promtool_bin, &["check", "config", "prometheus.yml"], None).await;
    promtool(&promtool_bin, &["check", "rules", "alerts.yml"], None).await;
    promtool(&promtool_bin, &["test", "rules", "alerts.test.yml"], None).await;

    // support: alice's queue. spill: nobody's; after 1 s its items overflow
    // to support. closed: nobody's; its items are disconnected at once.
    // nobody: nobody's; one item may wait, the next is refused.
    let queues = vec![
        queue("support", pb::QueueLimits::default()),
        queue(
            "spill",
            pb::QueueLimits {
                max_wait_secs: Some(1),
                when_max_wait: disposition(pb::disposition::Kind::OverflowQueue("support".into())),
                ..Default::default()
            },
        ),
        queue(
            "closed",
            pb::QueueLimits {
                when_no_agents: disposition(pb::disposition::Kind::DisconnectMessage(
                    "we are closed".into(),
                )),
                ..Default::default()
            },
        ),
        queue(
            "nobody",
            pb::QueueLimits {
                max_waiting: Some(1),
                when_full: disposition(pb::disposition::Kind::Reject(pb::disposition::Reject {})),
                ..Default::default()
            },
        ),
    ];
    let backend = common::sqlite();
    let config = ServeConfig::ephemeral(&backend.url);
    let centre = Centre::start_with(config, queues, vec![agent("alice", 3)]).await;
    let server = &centre.server;
    let prometheus = Prometheus::start(&prometheus_bin, server.metrics_addr).await;
    // A scrape before any traffic: every rate starts from these zeros.
    prometheus.wait_for(r#"up{job="switchboard"} == 1"#).await;

    let mut bridge = centre.bridge().await;
    let mut alice = centre.agent("alice").await;
    bridge.submit("call-1", pb::Channel::Voice, SUPPORT).await;
    let first = answer(&mut alice, &mut bridge).await;
    // alice is busy: these wait. call-3 is abandoned at once (short, within T).
    bridge.submit("call-2", pb::Channel::Voice, SUPPORT).await;
    bridge.submit("call-4", pb::Channel::Voice, SUPPORT).await;
    bridge.submit("call-3", pb::Channel::Voice, SUPPORT).await;
    let end = |id: &str| pb::EndInteractionRequest {
        interaction_id: id.into(),
        reason: String::new(),
    };
    bridge.client.end_interaction(end("call-3")).await.unwrap();
    submit_to(&mut bridge, "spill-1", "spill").await.unwrap();
    submit_to(&mut bridge, "closed-1", "closed").await.unwrap();
    submit_to(&mut bridge, "nobody-1", "nobody").await.unwrap();
    let refused = submit_to(&mut bridge, "nobody-2", "nobody")
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");

    // nobody-1 came last; once it has waited past T, so has every item before it.
    prometheus
        .wait_for(&format!(
            r#"switchboard_oldest_wait_seconds{{queue="nobody", channel="voice"}} > {THRESHOLD}"#
        ))
        .await;
    prometheus
        .wait_for(r#"switchboard_overflowed_total{queue="spill"} > 0"#)
        .await;
    // Abandoned after T; then call-2 and spill-1 are answered after T.
    bridge.client.end_interaction(end("call-4")).await.unwrap();
    hang_up(&mut alice, &mut bridge, &first).await;
    // Histograms have no series before their first observation: one scrape
    // between the first talk and wrap-up times and the others gives their
    // rates something to rise from.
    prometheus
        .wait_for(r#"switchboard_wrap_up_seconds_count{queue="support"} == 1"#)
        .await;
    for _ in 0..2 {
        let item = answer(&mut alice, &mut bridge).await;
        hang_up(&mut alice, &mut bridge, &item).await;
    }
    // The final counts are scraped, and the gauges refreshed since.
    prometheus
        .wait_for(r#"switchboard_wrap_up_seconds_count{queue="support"} == 3"#)
        .await;
    prometheus
        .wait_for(r#"switchboard_agents{state="ready"} == 1"#)
        .await;

    let (status, scrape) = common::http_get(server.metrics_addr, "/metrics")
        .await
        .expect("the metrics port answers");
    assert_eq!(status, 200);
    promtool(&promtool_bin, &["check", "metrics"], Some(&scrape)).await;

    // Every panel of every dashboard, its template variables taken as all
    // the values they offer, as Grafana's "All" selection of several values.
    let mut evaluated = 0;
    for (name, board) in dashboards() {
        let mut variables: Vec<(String, String)> = Vec::new();
        for variable in board["templating"]["list"]
            .as_array()
            .expect("templating.list")
        {
            let variable_name = variable["name"].as_str().expect("a variable name");
            if variable["type"] == "datasource" {
                continue;
            }
            let query = variable["query"]["query"]
                .as_str()
                .expect("a variable query");
            let query = expand(query, &variables);
            let (selector, label) = query
                .strip_prefix("label_values(")
                .and_then(|rest| rest.strip_suffix(')'))
                .and_then(|args| args.rsplit_once(','))
                .unwrap_or_else(|| {
                    panic!("{name}: {variable_name}: not label_values(selector, label)")
                });
            let values = prometheus.label_values(selector.trim(), label.trim()).await;
            assert!(
                !values.is_empty(),
                "{name}: variable {variable_name} offers nothing"
            );
            let values: Vec<String> = values.iter().map(|value| regex_escape(value)).collect();
            variables.push((variable_name.to_string(), format!("({})", values.join("|"))));
        }
        for panel in panels(&board) {
            for target in panel["targets"].as_array().expect("targets") {
                let expr = expand(target["expr"].as_str().expect("an expression"), &variables);
                let what = format!("{name}: {}", panel["title"]);
                prometheus.assert_data(&what, &expr).await;
                evaluated += 1;
            }
        }
    }
    assert!(evaluated >= 40, "only {evaluated} panel queries");

    // The queries the documentation gives.
    for document in ["README.md", "dashboards/README.md"] {
        for block in promql_blocks(document) {
            let expr = expand(&block, &[]);
            prometheus.assert_data(document, &expr).await;
        }
    }

    // Every alert rule loaded and healthy; the conditions this traffic makes
    // true are true, and Prometheus has the alerts pending (their `for` is
    // longer than the test). The store is fast here, so the commit-latency
    // rule cannot honestly be made to fire: its left-hand side, the p99 it
    // compares, must return data instead.
    let rules = prometheus.api("/api/v1/rules").await;
    let mut alerts = Vec::new();
    for group in rules["groups"].as_array().expect("groups") {
        for rule in group["rules"].as_array().expect("rules") {
            assert_eq!(rule["health"], "ok", "{rule}");
            alerts.push((
                rule["name"].as_str().expect("a name").to_string(),
                rule["query"].as_str().expect("a query").to_string(),
            ));
        }
    }
    let live = [
        ("SwitchboardServiceLevelBelowTarget", "support"),
        ("SwitchboardLongestWaitAboveThreshold", "nobody"),
        ("SwitchboardWaitingWithNoAgent", "nobody"),
    ];
    assert_eq!(alerts.len(), live.len() + 1, "{alerts:?}");
    for (alert, query) in &alerts {
        if let Some((_, queue)) = live.iter().find(|(name, _)| name == alert) {
            let samples = prometheus.assert_data(alert, query).await;
            assert!(
                samples
                    .iter()
                    .any(|sample| sample.metric.get("queue").and_then(Value::as_str) == Some(queue)),
                "{alert} does not hold for {queue}"
            );
            let pending = format!(
                r#"ALERTS{{alertname="{alert}", queue="{queue}", alertstate=~"pending|firing"}}"#
            );
            prometheus.wait_for(&pending).await;
        } else {
            assert_eq!(alert, "SwitchboardStoreCommitSlow");
            let (left, _) = query
                .rsplit_once('>')
                .expect("the rule compares the p99 with a bound");
            prometheus.assert_data(alert, left).await;
        }
    }

    // The overview's service level for support/voice, as the traffic made
    // it: answered within T: call-1; answered: call-1, call-2, spill-1;
    // abandoned: call-3 (within T), call-4 (after T). 1 / (3 + 2 - 1).
    let (_, overview) = dashboards()
        .into_iter()
        .find(|(_, board)| board["title"] == "Contact centre overview")
        .expect("the overview dashboard");
    let service_level = panels(&overview)
        .into_iter()
        .find(|panel| panel["title"] == "Service level")
        .expect("the service-level panel");
    let only_support = [
        ("queue".to_string(), "support".to_string()),
        ("channel".to_string(), "voice".to_string()),
    ];
    let expr = expand(
        service_level["targets"][0]["expr"]
            .as_str()
            .expect("an expression"),
        &only_support,
    );
    let samples = prometheus
        .assert_data("the overview's service level", &expr)
        .await;
    let computed = samples[0].value;
    assert!(
        (computed - 0.25).abs() < 1e-9,
        "service level {computed}, expected 0.25"
    );

    // The interval report, computed in SQL from the database, must agree
    // with what Prometheus computes from the counters.
    let now = chrono::Utc::now().timestamp();
    let request = pb::GetIntervalReportRequest {
        from: Some(prost_types::Timestamp {
            seconds: now - 86_400,
            nanos: 0,
        }),
        to: Some(prost_types::Timestamp {
            seconds: now + 86_400,
            nanos: 0,
        }),
        interval: pb::ReportInterval::Day.into(),
        queue_ids: vec!["support".into()],
    };
    let rows = server
        .supervisor()
        .await
        .get_interval_report(request)
        .await
        .expect("the interval report")
        .into_inner()
        .rows;
    // Sum the days in case the test straddles midnight UTC.
    let (mut within, mut counted) = (0, 0);
    for row in rows
        .iter()
        .filter(|row| row.channel == pb::Channel::Voice as i32)
    {
        within += row.answered_within_threshold;
        counted += row.answered + row.abandoned - row.abandoned_within_threshold;
    }
    let reported = within as f64 / counted as f64;
    assert!(
        (reported - computed).abs() < 1e-9,
        "the report says {reported}, Prometheus {computed}: {rows:?}"
    );

    drop((alice, bridge));
    drop(prometheus);
    centre.server.stop().await;
}
