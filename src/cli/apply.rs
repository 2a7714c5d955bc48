//! `switchboard apply -f centre.yaml`: makes the server's configuration
//! match a centre file. Entries missing on the server are created, entries
//! that differ are updated, the rest are left alone, so applying the same
//! file twice changes nothing the second time. Nothing is deleted: an entry
//! the file does not name stays as it is.

use super::centre::CentreFile;
use super::table::Table;
use super::{CliError, Supervisor};
use crate::domain::{Agent, Disposition, EntryPoint, Queue, Skill};
use crate::grpc::convert;
use crate::proto::v1 as pb;
use serde_json::json;
use std::collections::HashMap;

/// What applying did to one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// It was missing and is now created.
    Created,
    /// It differed and is now updated.
    Updated,
    /// It already matched.
    Unchanged,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::Created => "created",
            Action::Updated => "updated",
            Action::Unchanged => "unchanged",
        }
    }
}

/// One entry's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// skill, queue, entry point or agent.
    pub kind: &'static str,
    /// Its name, id or address.
    pub id: String,
    /// What was done.
    pub action: Action,
}

/// The changes as a table.
pub fn changes_table(changes: &[Change]) -> Table {
    let mut table = Table::new(&["kind", "id", "action"]);
    for change in changes {
        table.push(vec![
            json!(change.kind),
            json!(change.id),
            json!(change.action.as_str()),
        ]);
    }
    table
}

/// Decides what to do with a desired entry given the current ones.
fn decide<T: PartialEq>(current: &HashMap<String, T>, id: &str, desired: &T) -> Action {
    match current.get(id) {
        None => Action::Created,
        Some(existing) if existing == desired => Action::Unchanged,
        Some(_) => Action::Updated,
    }
}

/// A queue with its step requirements in a canonical order.
fn canonical_queue(mut queue: Queue) -> Queue {
    for step in &mut queue.steps {
        step.requirements
            .sort_by(|a, b| a.skill.as_str().cmp(b.skill.as_str()));
    }
    queue
}

/// An agent with skills and queues in a canonical order.
fn canonical_agent(mut agent: Agent) -> Agent {
    agent.skills.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
    agent.queues.sort();
    agent
}

/// A queue without its overflow targets, which may not exist yet.
fn without_overflow(mut queue: Queue) -> Queue {
    let limits = &mut queue.limits;
    for disposition in [
        &mut limits.when_full,
        &mut limits.when_max_wait,
        &mut limits.when_no_agents,
    ] {
        if matches!(disposition, Some(Disposition::Overflow { .. })) {
            *disposition = None;
        }
    }
    queue
}

/// Reads a stored entry back; the server only stores valid ones.
fn stored<T>(read: crate::error::Result<T>) -> Result<T, CliError> {
    read.map_err(|error| CliError::Status(format!("the server sent an invalid entry: {error}")))
}

/// One entry to write.
enum Entry {
    Skill(Skill),
    Queue(Queue),
    EntryPoint(EntryPoint),
    Agent(Agent),
}

/// Creates or updates one entry on the server.
async fn write(supervisor: &mut Supervisor, entry: Entry, create: bool) -> Result<(), CliError> {
    match entry {
        Entry::Skill(skill) => {
            let skill = Some(convert::skill_to_proto(skill));
            if create {
                let request = supervisor.request(pb::CreateSkillRequest { skill });
                supervisor.client.create_skill(request).await?;
            } else {
                let request = supervisor.request(pb::UpdateSkillRequest { skill });
                supervisor.client.update_skill(request).await?;
            }
        }
        Entry::Queue(queue) => {
            let queue = Some(convert::queue_to_proto(queue));
            if create {
                let request = supervisor.request(pb::CreateQueueRequest { queue });
                supervisor.client.create_queue(request).await?;
            } else {
                let request = supervisor.request(pb::UpdateQueueRequest { queue });
                supervisor.client.update_queue(request).await?;
            }
        }
        Entry::EntryPoint(entry) => {
            let entry_point = Some(convert::entry_point_to_proto(entry));
            if create {
                let request = supervisor.request(pb::CreateEntryPointRequest { entry_point });
                supervisor.client.create_entry_point(request).await?;
            } else {
                let request = supervisor.request(pb::UpdateEntryPointRequest { entry_point });
                supervisor.client.update_entry_point(request).await?;
            }
        }
        Entry::Agent(agent) => {
            let agent = Some(convert::agent_to_proto(agent));
            if create {
                let request = supervisor.request(pb::CreateAgentRequest { agent });
                supervisor.client.create_agent(request).await?;
            } else {
                let request = supervisor.request(pb::UpdateAgentRequest { agent });
                supervisor.client.update_agent(request).await?;
            }
        }
    }
    Ok(())
}

/// The server's current configuration, each kind keyed by name, id or address.
struct Current {
    skills: HashMap<String, Skill>,
    queues: HashMap<String, Queue>,
    entry_points: HashMap<String, EntryPoint>,
    agents: HashMap<String, Agent>,
}

impl Current {
    async fn read(supervisor: &mut Supervisor) -> Result<Self, CliError> {
        let client = &mut supervisor.client;
        let mut current = Current {
            skills: HashMap::new(),
            queues: HashMap::new(),
            entry_points: HashMap::new(),
            agents: HashMap::new(),
        };
        for skill in client
            .list_skills(pb::ListSkillsRequest {})
            .await?
            .into_inner()
            .skills
        {
            let skill = stored(convert::skill_from_proto(&skill))?;
            current.skills.insert(skill.name.to_string(), skill);
        }
        for queue in client
            .list_queues(pb::ListQueuesRequest {})
            .await?
            .into_inner()
            .queues
        {
            let queue = canonical_queue(stored(convert::queue_from_proto(&queue))?);
            current.queues.insert(queue.id.to_string(), queue);
        }
        let listed = client
            .list_entry_points(pb::ListEntryPointsRequest {})
            .await?;
        for entry in listed.into_inner().entry_points {
            let entry = stored(convert::entry_point_from_proto(&entry))?;
            current
                .entry_points
                .insert(entry.address.to_string(), entry);
        }
        for agent in client
            .list_agents(pb::ListAgentsRequest {})
            .await?
            .into_inner()
            .agents
        {
            let agent = canonical_agent(stored(convert::agent_from_proto(&agent))?);
            current.agents.insert(agent.id.to_string(), agent);
        }
        Ok(current)
    }
}

/// Applies `centre` to the server, in dependency order: skills, queues
/// (created first without their overflow targets, which are set once every
/// queue exists), entry points, agents. With `dry_run`, only says what it
/// would do.
pub async fn apply(
    supervisor: &mut Supervisor,
    centre: &CentreFile,
    dry_run: bool,
) -> Result<Vec<Change>, CliError> {
    let current = Current::read(supervisor).await?;
    let mut planned = Vec::new();
    for entry in &centre.skills {
        let skill = entry.0.clone();
        let action = decide(&current.skills, skill.name.as_str(), &skill);
        planned.push(("skill", skill.name.to_string(), action, Entry::Skill(skill)));
    }
    let mut overflowing = Vec::new();
    for entry in &centre.queues {
        let queue = canonical_queue(entry.0.clone());
        let action = decide(&current.queues, queue.id.as_str(), &queue);
        let id = queue.id.to_string();
        if action == Action::Created && without_overflow(queue.clone()) != queue {
            overflowing.push(Entry::Queue(queue.clone()));
            planned.push(("queue", id, action, Entry::Queue(without_overflow(queue))));
        } else {
            planned.push(("queue", id, action, Entry::Queue(queue)));
        }
    }
    for entry in &centre.entry_points {
        let entry = entry.0.clone();
        let action = decide(&current.entry_points, entry.address.as_str(), &entry);
        let id = entry.address.to_string();
        planned.push(("entry point", id, action, Entry::EntryPoint(entry)));
    }
    for entry in &centre.agents {
        let agent = canonical_agent(entry.0.clone());
        let action = decide(&current.agents, agent.id.as_str(), &agent);
        planned.push(("agent", agent.id.to_string(), action, Entry::Agent(agent)));
    }
    let mut changes = Vec::with_capacity(planned.len());
    let mut overflowing = overflowing.into_iter();
    for (kind, id, action, entry) in planned {
        if !dry_run && action != Action::Unchanged {
            write(supervisor, entry, action == Action::Created).await?;
        }
        // Once the last queue exists, the overflow targets can be set.
        if !dry_run && kind == "queue" {
            let last_queue = centre
                .queues
                .last()
                .is_some_and(|queue| queue.0.id.as_str() == id);
            if last_queue {
                for queue in overflowing.by_ref() {
                    write(supervisor, queue, false).await?;
                }
            }
        }
        changes.push(Change { kind, id, action });
    }
    Ok(changes)
}
