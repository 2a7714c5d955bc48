//! The supervisor subcommands and what each prints.

use super::apply::{apply, changes_table};
use super::centre::CentreFile;
use super::table::Table;
use super::{CliError, ClientOptions, Supervisor, top};
use crate::grpc::convert;
use crate::proto::v1 as pb;
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Value, json};
use std::path::PathBuf;

/// A supervisor subcommand.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Makes the server's configuration match a centre file (YAML or TOML).
    Apply {
        /// The centre file.
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        /// Only says what would change.
        #[arg(long)]
        dry_run: bool,
    },
    /// Lists, shows or deletes skills.
    Skills {
        #[command(subcommand)]
        action: Manage,
    },
    /// Lists, shows or deletes queues.
    Queues {
        #[command(subcommand)]
        action: Manage,
    },
    /// Lists, shows or deletes entry points.
    EntryPoints {
        #[command(subcommand)]
        action: Manage,
    },
    /// Lists, shows or deletes agents.
    Agents {
        #[command(subcommand)]
        action: Manage,
    },
    /// Prints real-time statistics of queues (default) or agents.
    Stats {
        /// `queues` or `agents`.
        #[arg(value_enum, default_value = "queues")]
        of: StatsOf,
    },
    /// A live wallboard of queues and agents.
    Top {
        /// Prints one frame and exits, for scripts and tests.
        #[arg(long)]
        once: bool,
    },
    /// Forces an agent's state: ready, not-ready (with --reason) or logged-out.
    ForceState {
        /// The agent.
        agent: String,
        /// The state.
        #[arg(value_enum)]
        state: ForcedState,
        /// The not-ready reason.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Moves a waiting work item to another queue, keeping its arrival time.
    Move {
        /// The work item.
        item: String,
        /// The queue.
        queue: String,
    },
    /// Changes a waiting work item's priority (-100 to 100).
    Reprioritise {
        /// The work item.
        item: String,
        /// The new priority.
        #[arg(allow_hyphen_values = true)]
        priority: i32,
    },
    /// Cancels a waiting or offered work item; the bridge disconnects it.
    Cancel {
        /// The work item.
        item: String,
        /// Why, for the audit log.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Offers a waiting work item to a named agent.
    Assign {
        /// The work item.
        item: String,
        /// The agent.
        agent: String,
    },
    /// Prints interval statistics computed from the database.
    Report {
        /// Start of the range: a date (2026-11-25) or an RFC 3339 time, UTC.
        #[arg(long)]
        from: String,
        /// End of the range, exclusive; defaults to now.
        #[arg(long)]
        to: Option<String>,
        /// Row length: 15m, 30m, 60m or day.
        #[arg(long, value_enum, default_value = "60m")]
        interval: Interval,
        /// Only these queues (repeat the option).
        #[arg(long = "queue")]
        queues: Vec<String>,
    },
}

/// What to list, show or delete.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Manage {
    /// Lists every entry.
    List,
    /// Shows one entry in full.
    Get {
        /// Its name, id or address.
        id: String,
    },
    /// Deletes one entry.
    Delete {
        /// Its name, id or address.
        id: String,
    },
}

/// Statistics to print.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum StatsOf {
    /// Per queue and channel.
    Queues,
    /// Per agent.
    Agents,
}

/// A state a supervisor may force.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ForcedState {
    /// Ready for work.
    Ready,
    /// Not ready, with a reason.
    NotReady,
    /// Signed out.
    LoggedOut,
}

/// A report's row length.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Interval {
    /// 15 minutes.
    #[value(name = "15m")]
    Minutes15,
    /// 30 minutes.
    #[value(name = "30m")]
    Minutes30,
    /// 60 minutes.
    #[value(name = "60m")]
    Minutes60,
    /// A UTC day.
    Day,
}

/// What a command shows: a table, or a document for `get`.
enum Shown {
    Table(Table),
    Document(Value),
}

/// Runs a supervisor command and prints its result.
pub async fn run(options: &ClientOptions, command: Command) -> Result<(), CliError> {
    let mut supervisor = Supervisor::connect(options).await?;
    let shown = match command {
        Command::Top { once } => return top::run(&mut supervisor, once, options.json).await,
        Command::Apply { file, dry_run } => {
            let centre = CentreFile::read(&file)?;
            Shown::Table(changes_table(
                &apply(&mut supervisor, &centre, dry_run).await?,
            ))
        }
        Command::Skills { action } => manage(&mut supervisor, Kind::Skill, action).await?,
        Command::Queues { action } => manage(&mut supervisor, Kind::Queue, action).await?,
        Command::EntryPoints { action } => {
            manage(&mut supervisor, Kind::EntryPoint, action).await?
        }
        Command::Agents { action } => manage(&mut supervisor, Kind::Agent, action).await?,
        Command::Stats { of } => Shown::Table(stats(&mut supervisor, of).await?),
        Command::Report {
            from,
            to,
            interval,
            queues,
        } => Shown::Table(report(&mut supervisor, &from, to.as_deref(), interval, queues).await?),
        action => Shown::Table(act(&mut supervisor, action).await?),
    };
    match (shown, options.json) {
        (Shown::Table(table), false) => print!("{}", table.render()),
        (Shown::Table(table), true) => println!("{}", table.to_json()),
        (Shown::Document(document), _) => println!(
            "{}",
            serde_json::to_string_pretty(&document).unwrap_or_default()
        ),
    }
    Ok(())
}

/// A kind of configuration entry.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Skill,
    Queue,
    EntryPoint,
    Agent,
}

/// Reads an entry the server sent as JSON of its domain form.
fn document<T: serde::Serialize>(read: crate::error::Result<T>) -> Result<Value, CliError> {
    let entry = read
        .map_err(|error| CliError::Status(format!("the server sent an invalid entry: {error}")))?;
    serde_json::to_value(entry).map_err(|error| CliError::Status(error.to_string()))
}

async fn manage(
    supervisor: &mut Supervisor,
    kind: Kind,
    action: Manage,
) -> Result<Shown, CliError> {
    let client = &mut supervisor.client;
    match action {
        Manage::List => {
            let mut rows = Vec::new();
            match kind {
                Kind::Skill => {
                    let listed = client.list_skills(pb::ListSkillsRequest {}).await?;
                    for skill in listed.into_inner().skills {
                        rows.push(vec![json!(skill.name), json!(skill.description)]);
                    }
                }
                Kind::Queue => {
                    let listed = client.list_queues(pb::ListQueuesRequest {}).await?;
                    for queue in listed.into_inner().queues {
                        rows.push(vec![json!(queue.id), json!(queue.description)]);
                    }
                }
                Kind::EntryPoint => {
                    let listed = client
                        .list_entry_points(pb::ListEntryPointsRequest {})
                        .await?;
                    for entry in listed.into_inner().entry_points {
                        rows.push(vec![json!(entry.address), json!(entry.queue)]);
                    }
                }
                Kind::Agent => {
                    let listed = client.list_agents(pb::ListAgentsRequest {}).await?;
                    for agent in listed.into_inner().agents {
                        rows.push(vec![json!(agent.id), json!(agent.display_name)]);
                    }
                }
            }
            let columns: &[&'static str] = match kind {
                Kind::Skill => &["name", "description"],
                Kind::Queue => &["id", "description"],
                Kind::EntryPoint => &["address", "queue"],
                Kind::Agent => &["id", "display_name"],
            };
            let mut table = Table::new(columns);
            for row in rows {
                table.push(row);
            }
            Ok(Shown::Table(table))
        }
        Manage::Get { id } => {
            let found = match kind {
                Kind::Skill => {
                    let got = client.get_skill(pb::GetSkillRequest { name: id }).await?;
                    document(convert::skill_from_proto(&got.into_inner()))?
                }
                Kind::Queue => {
                    let got = client.get_queue(pb::GetQueueRequest { id }).await?;
                    document(convert::queue_from_proto(&got.into_inner()))?
                }
                Kind::EntryPoint => {
                    let request = pb::GetEntryPointRequest { address: id };
                    let got = client.get_entry_point(request).await?;
                    document(convert::entry_point_from_proto(&got.into_inner()))?
                }
                Kind::Agent => {
                    let got = client.get_agent(pb::GetAgentRequest { id }).await?;
                    document(convert::agent_from_proto(&got.into_inner()))?
                }
            };
            Ok(Shown::Document(found))
        }
        Manage::Delete { id } => {
            let label = match kind {
                Kind::Skill => {
                    let request = supervisor.request(pb::DeleteSkillRequest { name: id.clone() });
                    supervisor.client.delete_skill(request).await?;
                    "skill"
                }
                Kind::Queue => {
                    let request = supervisor.request(pb::DeleteQueueRequest { id: id.clone() });
                    supervisor.client.delete_queue(request).await?;
                    "queue"
                }
                Kind::EntryPoint => {
                    let request = supervisor.request(pb::DeleteEntryPointRequest {
                        address: id.clone(),
                    });
                    supervisor.client.delete_entry_point(request).await?;
                    "entry point"
                }
                Kind::Agent => {
                    let request = supervisor.request(pb::DeleteAgentRequest { id: id.clone() });
                    supervisor.client.delete_agent(request).await?;
                    "agent"
                }
            };
            let mut table = Table::new(&["kind", "id", "action"]);
            table.push(vec![json!(label), json!(id), json!("deleted")]);
            Ok(Shown::Table(table))
        }
    }
}

/// Seconds of an optional protobuf duration, for tables.
pub(super) fn seconds(duration: Option<prost_types::Duration>) -> Value {
    match duration {
        Some(duration) => json!(duration.seconds as f64 + f64::from(duration.nanos) / 1e9),
        None => Value::Null,
    }
}

/// A channel's lower-case name.
pub(super) fn channel_name(value: i32) -> &'static str {
    match pb::Channel::try_from(value) {
        Ok(pb::Channel::Voice) => "voice",
        Ok(pb::Channel::Chat) => "chat",
        Ok(pb::Channel::Video) => "video",
        _ => "unknown",
    }
}

/// A routing state's lower-case name, with the not-ready reason.
pub(super) fn state_name(value: i32, reason: &str) -> String {
    let name = pb::RoutingState::try_from(value)
        .map(|state| state.as_str_name().trim_start_matches("ROUTING_STATE_"))
        .unwrap_or("UNKNOWN")
        .to_lowercase();
    if reason.is_empty() {
        name
    } else {
        format!("{name} ({reason})")
    }
}

/// The queue figures as a table.
pub(super) fn queue_table(stats: &[pb::QueueStats]) -> Table {
    let mut table = Table::new(&[
        "queue",
        "channel",
        "waiting",
        "longest_wait",
        "estimated_wait",
        "signed_in",
        "ready",
        "busy",
        "wrap_up",
        "not_ready",
        "offered",
        "answered",
        "abandoned",
        "sl_today",
        "sl_15m",
    ]);
    for row in stats {
        let not_ready: u32 = row.agents_not_ready.values().sum();
        table.push(vec![
            json!(row.queue),
            json!(channel_name(row.channel)),
            json!(row.waiting),
            seconds(row.longest_wait),
            seconds(row.estimated_wait),
            json!(row.agents_signed_in),
            json!(row.agents_ready),
            json!(row.agents_busy + row.agents_reserved),
            json!(row.agents_wrap_up),
            json!(not_ready),
            json!(row.offered_today),
            json!(row.answered_today),
            json!(row.abandoned_today),
            json!(row.service_level_today),
            json!(row.service_level_15m),
        ]);
    }
    table
}

/// The agent figures as a table.
pub(super) fn agent_table(stats: &[pb::AgentStats]) -> Table {
    let mut table = Table::new(&[
        "agent",
        "state",
        "since",
        "presence",
        "work",
        "handled",
        "occupancy",
    ]);
    for row in stats {
        let since = row
            .since
            .and_then(|at| DateTime::from_timestamp(at.seconds, 0))
            .map(|at| at.format("%H:%M:%S").to_string());
        let presence = pb::Presence::try_from(row.presence)
            .map(|p| {
                p.as_str_name()
                    .trim_start_matches("PRESENCE_")
                    .to_lowercase()
            })
            .unwrap_or_default();
        table.push(vec![
            json!(row.agent_id),
            json!(state_name(row.state, &row.reason)),
            json!(since),
            json!(presence),
            json!(row.current_work_item_ids.join(" ")),
            json!(row.handled_today),
            json!(row.occupancy),
        ]);
    }
    table
}

async fn stats(supervisor: &mut Supervisor, of: StatsOf) -> Result<Table, CliError> {
    let client = &mut supervisor.client;
    Ok(match of {
        StatsOf::Queues => {
            let request = pb::GetQueueStatsRequest { queue_ids: vec![] };
            queue_table(&client.get_queue_stats(request).await?.into_inner().stats)
        }
        StatsOf::Agents => {
            let request = pb::GetAgentStatsRequest { agent_ids: vec![] };
            agent_table(&client.get_agent_stats(request).await?.into_inner().stats)
        }
    })
}

/// Carries out a supervisor action and shows its audit entry.
async fn act(supervisor: &mut Supervisor, command: Command) -> Result<Table, CliError> {
    let (what, target, answer) = match command {
        Command::ForceState {
            agent,
            state,
            reason,
        } => {
            let state = match state {
                ForcedState::Ready => pb::RoutingState::Ready,
                ForcedState::NotReady => pb::RoutingState::NotReady,
                ForcedState::LoggedOut => pb::RoutingState::LoggedOut,
            };
            let request = supervisor.request(pb::ForceAgentStateRequest {
                agent_id: agent.clone(),
                state: state.into(),
                reason,
            });
            let answer = supervisor.client.force_agent_state(request).await?;
            ("force_agent_state", agent, answer)
        }
        Command::Move { item, queue } => {
            let request = supervisor.request(pb::MoveWorkItemRequest {
                work_item_id: item.clone(),
                queue,
            });
            (
                "move",
                item,
                supervisor.client.move_work_item(request).await?,
            )
        }
        Command::Reprioritise { item, priority } => {
            let request = supervisor.request(pb::ReprioritiseWorkItemRequest {
                work_item_id: item.clone(),
                priority,
            });
            let answer = supervisor.client.reprioritise_work_item(request).await?;
            ("reprioritise", item, answer)
        }
        Command::Cancel { item, reason } => {
            let request = supervisor.request(pb::CancelWorkItemRequest {
                work_item_id: item.clone(),
                reason,
            });
            (
                "cancel",
                item,
                supervisor.client.cancel_work_item(request).await?,
            )
        }
        Command::Assign { item, agent } => {
            let request = supervisor.request(pb::AssignWorkItemRequest {
                work_item_id: item.clone(),
                agent_id: agent,
            });
            (
                "assign",
                item,
                supervisor.client.assign_work_item(request).await?,
            )
        }
        other => {
            return Err(CliError::Input(format!(
                "{other:?} is not a supervisor action"
            )));
        }
    };
    let mut table = Table::new(&["action", "target", "audit_id"]);
    table.push(vec![
        json!(what),
        json!(target),
        json!(answer.into_inner().audit_id),
    ]);
    Ok(table)
}

/// Reads a report bound: a date (midnight UTC) or an RFC 3339 time.
fn bound(field: &str, text: &str) -> Result<prost_types::Timestamp, CliError> {
    let at = if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        date.and_hms_opt(0, 0, 0).map(|at| at.and_utc())
    } else {
        DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|at| at.with_timezone(&Utc))
    };
    let at = at.ok_or_else(|| {
        CliError::Input(format!(
            "--{field}: {text:?} is neither a date (2026-11-25) nor an RFC 3339 time"
        ))
    })?;
    Ok(prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: 0,
    })
}

async fn report(
    supervisor: &mut Supervisor,
    from: &str,
    to: Option<&str>,
    interval: Interval,
    queue_ids: Vec<String>,
) -> Result<Table, CliError> {
    let to = match to {
        Some(to) => bound("to", to)?,
        None => prost_types::Timestamp {
            seconds: Utc::now().timestamp() + 1,
            nanos: 0,
        },
    };
    let interval = match interval {
        Interval::Minutes15 => pb::ReportInterval::ReportInterval15Minutes,
        Interval::Minutes30 => pb::ReportInterval::ReportInterval30Minutes,
        Interval::Minutes60 => pb::ReportInterval::ReportInterval60Minutes,
        Interval::Day => pb::ReportInterval::Day,
    };
    let request = supervisor.request(pb::GetIntervalReportRequest {
        from: Some(bound("from", from)?),
        to: Some(to),
        interval: interval.into(),
        queue_ids,
    });
    let rows = supervisor
        .client
        .get_interval_report(request)
        .await?
        .into_inner()
        .rows;
    let mut table = Table::new(&[
        "start",
        "queue",
        "channel",
        "offered",
        "answered",
        "abandoned",
        "short_abandons",
        "answered_within",
        "sl",
        "sl_answered",
        "sl2",
        "sl_removed",
        "asa",
        "aht",
        "max_wait",
        "occupancy",
        "overflowed_out",
        "transfers",
    ]);
    for row in rows {
        let start = row
            .start
            .and_then(|at| DateTime::from_timestamp(at.seconds, 0))
            .map(|at| at.format("%Y-%m-%d %H:%M").to_string());
        table.push(vec![
            json!(start),
            json!(row.queue),
            json!(channel_name(row.channel)),
            json!(row.offered),
            json!(row.answered),
            json!(row.abandoned),
            json!(row.short_abandons),
            json!(row.answered_within_threshold),
            json!(row.service_level),
            json!(row.service_level_answered),
            json!(row.service_level_sl2),
            json!(row.service_level_removed),
            seconds(row.asa),
            seconds(row.aht),
            seconds(row.max_wait),
            json!(row.occupancy),
            json!(row.overflowed_out),
            json!(row.transfers),
        ]);
    }
    Ok(table)
}
