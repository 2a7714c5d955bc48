//! `switchboard top`: a live wallboard of queues and agents in the
//! terminal, fed by the watch streams (no polling). Each update redraws the
//! frame; Ctrl-C leaves. `--once` prints the first frame and exits.

use super::commands::{agent_table, queue_table};
use super::{CliError, Supervisor};
use crate::proto::v1 as pb;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::io::Write;

/// What the wallboard shows: the latest figures of every queue and agent.
#[derive(Debug, Clone, Default)]
pub struct Board {
    queues: BTreeMap<(String, i32), pb::QueueStats>,
    agents: BTreeMap<String, pb::AgentStats>,
}

impl Board {
    /// Takes in a queue watch message: a snapshot replaces, an update merges.
    pub fn queues(&mut self, update: pb::QueueStatsUpdate) {
        if update.snapshot {
            self.queues.clear();
        }
        for stats in update.stats {
            self.queues
                .insert((stats.queue.clone(), stats.channel), stats);
        }
    }

    /// Takes in an agent watch message.
    pub fn agents(&mut self, update: pb::AgentStatsUpdate) {
        if update.snapshot {
            self.agents.clear();
        }
        for stats in update.stats {
            self.agents.insert(stats.agent_id.clone(), stats);
        }
    }

    /// The frame at `now`: a heading, the queues with anything to show
    /// (staff, traffic or waiting), then the agents signed in.
    pub fn render(&self, now: DateTime<Utc>) -> String {
        let queues: Vec<pb::QueueStats> = self
            .queues
            .values()
            .filter(|row| {
                row.agents_signed_in > 0
                    || row.waiting > 0
                    || row.offered_today > 0
                    || row.answered_today > 0
                    || row.abandoned_today > 0
            })
            .cloned()
            .collect();
        let signed_out = pb::RoutingState::LoggedOut as i32;
        let agents: Vec<pb::AgentStats> = self
            .agents
            .values()
            .filter(|row| row.state != signed_out)
            .cloned()
            .collect();
        let waiting: u32 = queues.iter().map(|row| row.waiting).sum();
        let mut frame = format!(
            "switchboard top  {}  waiting {}  agents signed in {} of {}\n\n",
            now.format("%H:%M:%S UTC"),
            waiting,
            agents.len(),
            self.agents.len()
        );
        frame.push_str(&queue_table(&queues).render());
        frame.push('\n');
        frame.push_str(&agent_table(&agents).render());
        frame
    }
}

/// Runs the wallboard until Ctrl-C, or prints one frame with `once`
/// (as JSON with `json`).
pub async fn run(supervisor: &mut Supervisor, once: bool, json: bool) -> Result<(), CliError> {
    let request = supervisor.request(pb::WatchQueuesRequest { queue_ids: vec![] });
    let mut queues = supervisor.client.watch_queues(request).await?.into_inner();
    let request = supervisor.request(pb::WatchAgentsRequest { agent_ids: vec![] });
    let mut agents = supervisor.client.watch_agents(request).await?.into_inner();
    let mut board = Board::default();
    let ended = || CliError::Status("the server ended the watch".into());
    board.queues(queues.message().await?.ok_or_else(ended)?);
    board.agents(agents.message().await?.ok_or_else(ended)?);
    if once {
        if json {
            let document = serde_json::json!({
                "queues": queue_table(&board.queues.values().cloned().collect::<Vec<_>>()).to_json(),
                "agents": agent_table(&board.agents.values().cloned().collect::<Vec<_>>()).to_json(),
            });
            println!("{document}");
        } else {
            print!("{}", board.render(Utc::now()));
        }
        return Ok(());
    }
    let mut stdout = std::io::stdout();
    loop {
        // Clear the screen and home the cursor, then draw.
        let _ = write!(stdout, "\x1b[2J\x1b[H{}", board.render(Utc::now()));
        let _ = stdout.flush();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            update = queues.message() => board.queues(update?.ok_or_else(ended)?),
            update = agents.message() => board.agents(update?.ok_or_else(ended)?),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_shows_busy_queues_and_signed_in_agents() {
        let mut board = Board::default();
        board.queues(pb::QueueStatsUpdate {
            snapshot: true,
            stats: vec![
                pb::QueueStats {
                    queue: "support".into(),
                    channel: pb::Channel::Voice as i32,
                    waiting: 2,
                    longest_wait: Some(prost_types::Duration {
                        seconds: 42,
                        nanos: 0,
                    }),
                    agents_signed_in: 1,
                    agents_busy: 1,
                    offered_today: 9,
                    answered_today: 7,
                    service_level_today: Some(0.875),
                    ..Default::default()
                },
                pb::QueueStats {
                    queue: "support".into(),
                    channel: pb::Channel::Video as i32,
                    ..Default::default()
                },
            ],
        });
        board.agents(pb::AgentStatsUpdate {
            snapshot: true,
            stats: vec![
                pb::AgentStats {
                    agent_id: "alice".into(),
                    state: pb::RoutingState::Busy as i32,
                    since: Some(prost_types::Timestamp {
                        seconds: 1_764_000_000,
                        nanos: 0,
                    }),
                    presence: pb::Presence::Available as i32,
                    current_work_item_ids: vec!["item-1".into()],
                    handled_today: 6,
                    occupancy: Some(0.5),
                    ..Default::default()
                },
                pb::AgentStats {
                    agent_id: "bob".into(),
                    state: pb::RoutingState::LoggedOut as i32,
                    ..Default::default()
                },
            ],
        });
        let now = DateTime::from_timestamp(1_764_000_060, 0).unwrap();
        let frame = board.render(now);
        let expected = "\
switchboard top  16:01:00 UTC  waiting 2  agents signed in 1 of 2

QUEUE    CHANNEL  WAITING  LONGEST_WAIT  ESTIMATED_WAIT  SIGNED_IN  READY  BUSY  WRAP_UP  NOT_READY  OFFERED  ANSWERED  ABANDONED  SL_TODAY  SL_15M
support  voice    2        42.00         -               1          0      1     0        0          9        7         0          0.88      -

AGENT  STATE  SINCE     PRESENCE   WORK    HANDLED  OCCUPANCY
alice  busy   16:00:00  available  item-1  6        0.50
";
        assert_eq!(frame, expected);

        // An update replaces one agent's row and keeps the rest.
        board.agents(pb::AgentStatsUpdate {
            snapshot: false,
            stats: vec![pb::AgentStats {
                agent_id: "bob".into(),
                state: pb::RoutingState::Ready as i32,
                ..Default::default()
            }],
        });
        let frame = board.render(now);
        assert!(frame.contains("agents signed in 2 of 2"), "{frame}");
        assert!(frame.contains("\nbob    ready"), "{frame}");
    }
}
