//! The router task: the one owner of the engine. It applies operations in
//! order, fires the engine's timers, and turns every effect into durable
//! records, bridge instructions and agent events.

use super::notices::{AgentNotice, BridgeNotice, DisconnectKind, OfferNotice, OpenInteraction};
use super::op::{BridgeReport, Commit, Op, Submission, Submitted};
use super::stats::{Board, StatsFrame};
use super::{Clock, LiveConfig, WaitTarget};
use crate::domain::{
    Agent, AgentId, AgentKind, Disposition, EntryPoint, EntryPointAddress, InteractionId, Presence,
    Queue, QueueId, Timestamp, WorkItemId,
};
use crate::engine::{
    Command, Effect, Engine, ItemStatus, LimitReason, NewWorkItem, OfferEndReason, ShardedMap,
};
use crate::error::{Error, Result};
use crate::metrics::RoutingMetrics;
use crate::store::records::{
    AgentStateRecord, EventKind, Record, StoredWorkItem, UnsentInstruction, WorkItemEvent,
    WorkItemRecord,
};
use crate::store::writer::Writer;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, oneshot};

/// How many finished interactions are remembered for idempotent resubmission
/// while their records may still be on their way to the store.
const RECENTLY_CLOSED: usize = 100_000;

/// Instructions kept for a bridge while none is connected; past this the
/// oldest are dropped, with a warning.
const UNSENT_INSTRUCTIONS: usize = 100_000;

/// What the router keeps of an open work item beyond what the engine routes with.
struct Details {
    /// The item as created (for offers, deliveries and records).
    record: WorkItemRecord,
    /// The queue it is in now.
    queue: QueueId,
    /// The agent who answered it.
    agent: Option<AgentId>,
    /// True once delivered to an agent (answered), until connected.
    delivered: bool,
    /// True once the bridges were told to put the call through: when the
    /// answer was committed, or at once while the store was down.
    put_through: bool,
    /// True once the bridge reported it connected.
    connected: bool,
    /// When the conversation ended and the agent's wrap-up of this item
    /// began, if it has.
    wrap_up_since: Option<Timestamp>,
    /// The last position and wait (whole seconds) sent to the bridge.
    last_position: Option<(u32, Option<u64>)>,
}

impl Details {
    /// A new item, waiting in `queue`.
    fn waiting(record: WorkItemRecord, queue: QueueId) -> Self {
        Self {
            record,
            queue,
            agent: None,
            delivered: false,
            put_through: false,
            connected: false,
            wrap_up_since: None,
            last_position: None,
        }
    }
}

/// Answers whose commit completed, and the agent's acknowledgement that
/// waits for their calls to be put through.
struct CommittedAnswers {
    /// The items answered.
    items: Vec<WorkItemId>,
    /// How the commit ended.
    result: Result<()>,
    /// Completes the agent's command.
    done: oneshot::Sender<Result<()>>,
}

/// An agent's open session.
struct AgentSession {
    /// Tells this session apart from the agent's earlier and later ones.
    id: u64,
    /// Where the agent's events go.
    notices: mpsc::UnboundedSender<AgentNotice>,
}

/// The router's state.
pub(super) struct Router {
    engine: Engine,
    clock: Clock,
    writer: Writer,
    config: LiveConfig,
    /// Entry point → queue.
    entry_points: HashMap<EntryPointAddress, QueueId>,
    /// Agent → UC address, for deliveries.
    addresses: HashMap<AgentId, String>,
    /// Agents whose presence the UC feed has reported since start. A formal
    /// agent the feed has not reported is taken to be AVAILABLE when they
    /// sign in: their ACD client is running, so they are at their desk.
    presence_reported: std::collections::HashSet<AgentId>,
    /// Every open work item, in a map that grows a shard at a time: the
    /// router answers nothing while a map rehashes, and one holding half a
    /// million items would copy them all at once.
    items: ShardedMap<WorkItemId, Details>,
    /// Open interactions: the bridge's id → the current segment, sharded
    /// like `items` and for the same reason; the ids come from the bridge,
    /// so they hash with a random key.
    interactions: ShardedMap<InteractionId, WorkItemId, std::hash::RandomState>,
    /// Finished work items, oldest first, with their interactions.
    closed: VecDeque<(WorkItemId, InteractionId)>,
    /// The finished work items in `closed`, for repeated reports about them
    /// (only the latest [`RECENTLY_CLOSED`]: an item not in `items` may
    /// have finished long ago).
    closed_ids: ShardedMap<WorkItemId, ()>,
    /// Finished interactions in `closed`, with their last segment and its
    /// queue, for a repeated submission or end.
    closed_items: ShardedMap<InteractionId, (WorkItemId, QueueId), std::hash::RandomState>,
    /// Agents' sessions.
    agent_sessions: HashMap<AgentId, AgentSession>,
    /// Bridge sessions.
    bridges: HashMap<u64, mpsc::UnboundedSender<BridgeNotice>>,
    /// Items just answered, whose delivery waits for the answer's commit
    /// (`deliver_after`).
    just_answered: Vec<WorkItemId>,
    /// Answers committed, their deliveries due (`put_through`), and who waits.
    committed: (
        mpsc::UnboundedSender<CommittedAnswers>,
        mpsc::UnboundedReceiver<CommittedAnswers>,
    ),
    /// Instructions (overflows, disconnects) given while no bridge session
    /// was open, sent to the next one that opens.
    unsent: VecDeque<BridgeNotice>,
    /// The last session id handed out.
    last_session: u64,
    /// Scratch buffer for effects.
    effects: Vec<Effect>,
    /// Metrics, a view of the effects.
    metrics: RoutingMetrics,
    /// Supervisors' real-time statistics, another view of the effects.
    board: Board,
}

impl Router {
    pub(super) fn new(
        clock: Clock,
        writer: Writer,
        config: LiveConfig,
        metrics: RoutingMetrics,
        stats: broadcast::Sender<Arc<StatsFrame>>,
    ) -> Self {
        let board = Board::new(clock.now(), stats);
        Self {
            engine: Engine::new(),
            clock,
            writer,
            config,
            entry_points: HashMap::new(),
            addresses: HashMap::new(),
            presence_reported: std::collections::HashSet::new(),
            items: ShardedMap::default(),
            interactions: ShardedMap::default(),
            closed: VecDeque::new(),
            closed_ids: ShardedMap::default(),
            closed_items: ShardedMap::default(),
            agent_sessions: HashMap::new(),
            bridges: HashMap::new(),
            just_answered: Vec::new(),
            committed: mpsc::unbounded_channel(),
            unsent: VecDeque::new(),
            last_session: 0,
            effects: Vec::new(),
            metrics,
            board,
        }
    }

    /// Loads the stored configuration into the engine.
    pub(super) fn load_configuration(
        &mut self,
        queues: Vec<Queue>,
        agents: Vec<Agent>,
        entry_points: Vec<EntryPoint>,
    ) {
        let now = self.clock.now();
        for queue in queues {
            self.board.set_queue(&queue.id, queue.sl_thresholds);
            let id = queue.id.clone();
            if let Err(error) = self.engine.apply(Command::UpsertQueue(queue), now) {
                tracing::error!(queue = %id, %error, "stored queue refused by the engine");
            }
        }
        for agent in agents {
            self.addresses
                .insert(agent.id.clone(), agent.uc_address.clone());
            let id = agent.id.clone();
            if let Err(error) = self.engine.apply(Command::UpsertAgent(agent), now) {
                tracing::error!(agent = %id, %error, "stored agent refused by the engine");
            }
        }
        for entry in entry_points {
            self.entry_points.insert(entry.address, entry.queue);
        }
    }

    /// Runs until every [`super::Live`] handle is dropped.
    pub(super) async fn run(mut self, mut inbox: mpsc::Receiver<Op>) {
        let mut positions = tokio::time::interval(self.config.position_interval);
        positions.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut publish = tokio::time::interval(self.config.stats_interval);
        publish.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut availability = self.writer.availability();
        let mut writer_running = true;
        loop {
            let deadline = self.engine.next_deadline().map(|at| self.clock.instant(at));
            tokio::select! {
                op = inbox.recv() => {
                    let Some(op) = op else { break };
                    self.handle(op);
                    self.metrics.queue_depth(inbox.len());
                }
                () = sleep_until(deadline), if deadline.is_some() => {
                    let now = self.clock.now();
                    let mut records = Vec::new();
                    self.fire_timers(now, &mut records);
                    self.writer.write_detached(records);
                }
                _ = positions.tick() => {
                    self.send_positions();
                    self.metrics
                        .refresh(&self.engine, self.board.queues(), self.clock.now());
                }
                _ = publish.tick() => {
                    self.board.publish(&self.engine, self.clock.now(), false);
                }
                Some(answers) = self.committed.1.recv() => {
                    self.put_through(&answers.items);
                    let _ = answers.done.send(answers.result);
                }
                changed = availability.changed(), if writer_running => {
                    writer_running = changed.is_ok();
                    if !*availability.borrow_and_update() {
                        self.put_through_held();
                    }
                }
            }
        }
        for bridge in self.bridges.values() {
            let _ = bridge.send(BridgeNotice::GoingAway);
        }
        for session in self.agent_sessions.values() {
            let _ = session.notices.send(AgentNotice::GoingAway {
                reason: "the server is shutting down",
            });
        }
    }

    /// Fires due timers so that a command applies to up-to-date state.
    fn fire_timers(&mut self, now: Timestamp, records: &mut Vec<Record>) {
        if self.engine.next_deadline().is_some_and(|at| at <= now) {
            self.engine.tick_into(now, &mut self.effects);
            self.dispatch(now, records);
        }
    }

    /// Applies one command: due timers first, then the command, then its effects.
    fn apply(&mut self, command: Command, records: &mut Vec<Record>) -> Result<()> {
        let now = self.clock.now();
        self.fire_timers(now, records);
        let started = std::time::Instant::now();
        let applied = self.engine.apply_into(command, now, &mut self.effects);
        self.metrics.decision(started.elapsed());
        self.dispatch(now, records);
        applied
    }

    fn handle(&mut self, op: Op) {
        match op {
            Op::Submit {
                submission,
                reply,
                done,
            } => {
                let _ = reply.send(self.submit(submission, done));
            }
            Op::Existing {
                item,
                stored,
                reply,
            } => {
                let _ = reply.send(self.existing(item, &stored));
            }
            Op::Report { report, reply } => {
                let _ = reply.send(self.report(report));
            }
            Op::EndInteraction { interaction, reply } => {
                let _ = reply.send(self.end_interaction(&interaction));
            }
            Op::EstimateWait {
                target,
                channel,
                language,
                skills,
                reply,
            } => {
                let answer = self.queue_for(&target).and_then(|queue| {
                    let now = self.clock.now();
                    let estimate = self.engine.estimate_wait(
                        &queue,
                        channel,
                        language.as_deref(),
                        &skills,
                        now,
                    )?;
                    Ok((queue, estimate))
                });
                let _ = reply.send(answer);
            }
            Op::Stats { reply } => {
                let _ = reply.send(self.board.snapshot(&self.engine, self.clock.now()));
            }
            Op::OpenInteractions { reply } => {
                let _ = reply.send(self.open_interactions());
            }
            Op::OpenBridge { bridge_id, reply } => {
                let _ = reply.send(self.open_bridge(&bridge_id));
            }
            Op::CloseBridge { session, reply } => {
                self.bridges.remove(&session);
                let _ = reply.send(());
            }
            Op::SignIn {
                agent,
                ready,
                reply,
            } => {
                let _ = reply.send(self.sign_in(agent, ready));
            }
            Op::AgentCommand {
                session,
                command,
                reply,
            } => {
                let _ = reply.send(self.agent_command(session, command));
            }
            Op::SessionEnded {
                agent,
                session,
                reply,
            } => {
                self.session_ended(&agent, session);
                let _ = reply.send(());
            }
            Op::Presence { updates, reply } => {
                let _ = reply.send(self.presence(updates));
            }
            Op::Configure { command, reply } => {
                let _ = reply.send(self.configure(command));
            }
            Op::EntryPoint {
                address,
                entry,
                reply,
            } => {
                match entry {
                    Some(entry) => self.entry_points.insert(address, entry.queue),
                    None => self.entry_points.remove(&address),
                };
                let _ = reply.send(());
            }
        }
    }

    /// The queue a wait estimate or submission targets.
    fn queue_for(&self, target: &WaitTarget) -> Result<QueueId> {
        match target {
            WaitTarget::Queue(queue) => Ok(queue.clone()),
            WaitTarget::EntryPoint(address) => self
                .entry_points
                .get(address)
                .cloned()
                .ok_or_else(|| Error::not_found("entry point", address)),
        }
    }

    /// An answer for an interaction submitted before.
    fn existing(&self, item: WorkItemId, stored: &StoredWorkItem) -> Submitted {
        let queue = self.items.get(&item).map_or_else(
            || stored.item.queue.clone(),
            |details| details.queue.clone(),
        );
        self.figures(item, queue, false)
    }

    /// A submission's current figures: position and estimated wait if waiting.
    fn figures(&self, item: WorkItemId, queue: QueueId, created: bool) -> Submitted {
        let wait = match self.engine.item(&item) {
            Some(view) if matches!(view.status, ItemStatus::Waiting { .. }) => {
                self.engine.item_wait(&item)
            }
            _ => None,
        };
        Submitted {
            item,
            queue,
            position: wait.map_or(0, |wait| wait.position),
            estimated_wait: wait.and_then(|wait| wait.estimated_wait),
            created,
            rejected: None,
        }
    }

    /// Routes a submission; `done` is told once its records are committed,
    /// and dropped when it is refused (the records of the timers it fired
    /// are stored all the same).
    fn submit(
        &mut self,
        submission: Submission,
        done: oneshot::Sender<Result<()>>,
    ) -> Result<Submitted> {
        if let Some(item) = self.interactions.get(&submission.interaction_id) {
            let queue = self
                .items
                .get(item)
                .map(|details| details.queue.clone())
                .unwrap_or_else(|| "".into());
            // Submitted before, maybe not yet stored: the first submission's
            // commit hold may have run out (UNAVAILABLE) with its records
            // still queued, and this is the bridge's retry.
            self.writer.after_created(*item, done);
            return Ok(self.figures(*item, queue, false));
        }
        if let Some((item, queue)) = self.closed_items.get(&submission.interaction_id) {
            self.writer.after_created(*item, done);
            return Ok(self.figures(*item, queue.clone(), false));
        }
        let queue = match (&submission.queue, &submission.entry_point) {
            (Some(queue), _) => queue.clone(),
            (None, Some(address)) => self.queue_for(&WaitTarget::EntryPoint(address.clone()))?,
            (None, None) => {
                return Err(Error::invalid(
                    "entry_point",
                    "an entry point or a queue is required",
                ));
            }
        };
        let now = self.clock.now();
        let to_address = if submission.to_address.is_empty() {
            submission
                .entry_point
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default()
        } else {
            submission.to_address
        };
        let record = WorkItemRecord {
            id: WorkItemId::new(),
            interaction_id: submission.interaction_id,
            segment: 0,
            channel: submission.channel,
            from_address: submission.from_address,
            to_address,
            display_name: submission.display_name,
            entry_point: submission.entry_point,
            language: submission.language,
            attributes: submission.attributes,
            required_skills: submission.required_skills,
            priority: submission.priority,
            is_transfer: false,
            queue,
            arrived_at: now,
            enqueued_at: now,
        };
        let mut records = Vec::new();
        let submitted = match self.enqueue(record, &mut records) {
            Ok(submitted) => submitted,
            Err(error) => {
                // The timers it fired moved other items on: their records
                // are stored even though this submission is refused.
                self.writer.write_detached(records);
                return Err(error);
            }
        };
        // The answer tells the bridge the item's place in line: position
        // updates send it again only once it changes. (A transfer's new
        // segment has no answer; its first update is news.)
        if let Some(details) = self.items.get_mut(&submitted.item)
            && submitted.position > 0
        {
            details.last_position = Some((
                submitted.position,
                submitted.estimated_wait.map(|wait| wait.as_secs()),
            ));
        }
        self.writer.write_then(records, done);
        Ok(submitted)
    }

    /// Routes a new work item (first segment or transfer) and returns its
    /// figures; the records to commit go into `records`, and when the item
    /// is refused the records of the timers fired before it stay there.
    fn enqueue(&mut self, record: WorkItemRecord, records: &mut Vec<Record>) -> Result<Submitted> {
        let item = record.id;
        let new = new_work_item(&record);
        let channel = record.channel;
        let created = Record::Created(record.clone());
        // Timers first: one that closes a transfer's first segment finds
        // its interaction still pointing at it.
        let now = self.clock.now();
        self.fire_timers(now, records);
        let start = self.effects.len();
        // The engine takes the item first: a refused one (its transfer's
        // first segment left as it was) changes nothing of the router's.
        self.engine
            .apply_into(Command::Submit(new), now, &mut self.effects)?;
        self.interactions
            .insert(record.interaction_id.clone(), item);
        let queue = record.queue.clone();
        self.items
            .insert(item, Details::waiting(record, queue.clone()));
        let mut rejected = None;
        // Before this item's own events, which `dispatch` adds.
        records.push(created);
        self.metrics.arrival(&queue, channel);
        self.board.arrival(&queue, channel, now);
        for effect in &self.effects[start..] {
            if let Effect::Rejected {
                item: rejected_item,
                queue: full,
                ..
            } = effect
                && *rejected_item == item
            {
                rejected = Some(format!("queue {full} is full"));
            }
        }
        self.dispatch(now, records);
        let current = self
            .items
            .get(&item)
            .map_or(queue, |details| details.queue.clone());
        let mut submitted = self.figures(item, current, true);
        submitted.rejected = rejected;
        Ok(submitted)
    }

    fn report(&mut self, report: BridgeReport) -> Result<Commit> {
        if let Some(answer) = self.report_on_closed(&report) {
            return answer;
        }
        let mut records = Vec::new();
        let applied = match report {
            BridgeReport::Connected(item) => {
                let details = self
                    .items
                    .get_mut(&item)
                    .ok_or_else(|| Error::not_found("work item", item))?;
                if !details.delivered {
                    return Err(Error::FailedPrecondition(format!(
                        "work item {item} was never delivered to an agent"
                    )));
                }
                if details.connected {
                    return Ok(self.writer.after_queued());
                }
                if details.wrap_up_since.is_some() {
                    return Err(Error::FailedPrecondition(format!(
                        "work item {item} has ended"
                    )));
                }
                details.connected = true;
                records.push(event(
                    item,
                    self.clock.now(),
                    EventKind::Connected,
                    details.queue.clone(),
                    details.agent.clone(),
                ));
                Ok(())
            }
            BridgeReport::HungUp(item) => self.finish(item, &mut records),
            BridgeReport::Ended(item) => {
                // Ended already (a repeated report, or the consumer's
                // hang-up came first): the agent's wrap-up goes on.
                if self.require_open(item)?.wrap_up_since.is_some() {
                    return Ok(self.writer.after_queued());
                }
                if self.end_recovered(item, &mut records) {
                    Ok(())
                } else {
                    self.apply(Command::End(item), &mut records)
                }
            }
            BridgeReport::Transfer { item, queue } => self.transfer(item, queue, &mut records),
        };
        self.store(applied, records)
    }

    /// Stores the records of an operation: its caller waits for the commit
    /// when it was applied. A refused one may still have moved the router
    /// on (the timers it fired; a transfer's first segment, ended before
    /// its next was refused): its records are stored all the same.
    fn store(&self, applied: Result<()>, records: Vec<Record>) -> Result<Commit> {
        match applied {
            Ok(()) => Ok(self.writer.write(records)),
            Err(error) => {
                self.writer.write_detached(records);
                Err(error)
            }
        }
    }

    /// The answer to a report about an item finished a short while ago: an
    /// end or a hang-up repeats what finished it (a retry after a lost ack)
    /// and is acknowledged once that is stored; anything else is refused.
    /// `None` for an item not recently finished.
    fn report_on_closed(&self, report: &BridgeReport) -> Option<Result<Commit>> {
        let item = match report {
            BridgeReport::Connected(item)
            | BridgeReport::HungUp(item)
            | BridgeReport::Ended(item)
            | BridgeReport::Transfer { item, .. } => *item,
        };
        if self.items.contains_key(&item) || !self.closed_ids.contains_key(&item) {
            return None;
        }
        Some(match report {
            BridgeReport::HungUp(_) | BridgeReport::Ended(_) => Ok(self.writer.after_queued()),
            BridgeReport::Connected(_) | BridgeReport::Transfer { .. } => Err(
                Error::FailedPrecondition(format!("work item {item} has ended")),
            ),
        })
    }

    fn require_open(&self, item: WorkItemId) -> Result<&Details> {
        self.items
            .get(&item)
            .ok_or_else(|| Error::not_found("work item", item))
    }

    /// The consumer left: an abandon while waiting or offered, the end of the
    /// conversation once answered.
    fn finish(&mut self, item: WorkItemId, records: &mut Vec<Record>) -> Result<()> {
        let wrapping_up = self.require_open(item)?.wrap_up_since.is_some();
        if wrapping_up {
            return Ok(());
        }
        if self.end_recovered(item, records) {
            return Ok(());
        }
        let finished = match self.engine.item(&item).map(|view| view.status) {
            Some(ItemStatus::Connected { .. }) => self.apply(Command::End(item), records),
            Some(_) => self.apply(Command::Abandon(item), records),
            None => Err(Error::not_found("work item", item)),
        };
        match finished {
            // The consumer left as the item's own timer ran out (its longest
            // wait): the timer, fired first, ended it all the same.
            Err(_) if !self.items.contains_key(&item) => Ok(()),
            other => other,
        }
    }

    /// Ends an answered item recovered after a restart that the engine could
    /// not take back (its agent or queue is gone from the configuration): it
    /// completes without wrap-up. False when the engine holds the item.
    fn end_recovered(&mut self, item: WorkItemId, records: &mut Vec<Record>) -> bool {
        if self.engine.item(&item).is_some() {
            return false;
        }
        let Some(details) = self.items.get(&item) else {
            return false;
        };
        let now = self.clock.now();
        let (queue, agent) = (details.queue.clone(), details.agent.clone());
        records.push(event(
            item,
            now,
            EventKind::Ended,
            queue.clone(),
            agent.clone(),
        ));
        records.push(event(item, now, EventKind::Completed, queue, agent));
        self.close(item);
        true
    }

    /// Rebuilds routing from one open work item of the store, given in
    /// enqueue order. A waiting item keeps its arrival, enqueue time and
    /// priority, so its place in line and routing step; an offer in flight
    /// goes back to its place in line; an answered item waits for the bridge
    /// to end it, holding the capacity of its agent (signed out by the
    /// restart) when they sign in again; a
    /// wrap-up ends, since its agent is signed out. Adds the records to
    /// write to `records`.
    pub(super) fn recover(&mut self, stored: StoredWorkItem, records: &mut Vec<Record>) {
        let now = self.clock.now();
        let item = stored.item.id;
        let queue = stored.item.queue.clone();
        match stored.state.as_str() {
            "waiting" | "offered" => {
                if stored.state == "offered" {
                    records.push(event(
                        item,
                        now,
                        EventKind::OfferRescinded,
                        queue.clone(),
                        stored.agent.clone(),
                    ));
                }
                if let Err(error) = self.route_stored(stored.item, records) {
                    tracing::error!(%item, %error, "a recovered work item could not be queued again");
                }
            }
            "wrap_up" => {
                records.push(event(item, now, EventKind::Completed, queue, stored.agent));
            }
            _ => {
                self.interactions
                    .insert(stored.item.interaction_id.clone(), item);
                if let Some(agent) = &stored.agent {
                    let restore = Command::Restore {
                        item: new_work_item(&stored.item),
                        agent: agent.clone(),
                        since: stored.answered_at.unwrap_or(now),
                    };
                    if let Err(error) = self.apply(restore, records) {
                        // Still held below, outside the engine, until the
                        // bridge ends it (`end_recovered`).
                        tracing::warn!(%item, %error, "a recovered answered item holds no agent capacity");
                    }
                }
                let connected = stored.state == "connected";
                let mut details = Details::waiting(stored.item, queue);
                details.agent = stored.agent;
                details.delivered = true;
                details.put_through = true;
                details.connected = connected;
                self.items.insert(item, details);
            }
        }
    }

    /// Queues a stored work item again with its original times and priority.
    fn route_stored(&mut self, record: WorkItemRecord, records: &mut Vec<Record>) -> Result<()> {
        let item = record.id;
        let new = new_work_item(&record);
        self.interactions
            .insert(record.interaction_id.clone(), item);
        let queue = record.queue.clone();
        self.items.insert(item, Details::waiting(record, queue));
        let now = self.clock.now();
        let applied = self
            .engine
            .apply_into(Command::Requeue(new), now, &mut self.effects);
        let mut produced = Vec::new();
        self.dispatch(now, &mut produced);
        // The item is back in the line it is stored in: its "queued" event is
        // already recorded, and a restart must not record it again.
        produced.retain(|record| {
            !matches!(record, Record::Event(event) if event.work_item == item && event.kind == EventKind::Queued)
        });
        records.append(&mut produced);
        if applied.is_err() {
            self.close(item);
        }
        applied
    }

    fn end_interaction(&mut self, interaction: &InteractionId) -> Result<(WorkItemId, Commit)> {
        let Some(item) = self.interactions.get(interaction).copied() else {
            // Ended already: the bridge retries, the first answer lost or
            // UNAVAILABLE. Answered once what the first changed is stored.
            return match self.closed_items.get(interaction) {
                Some((item, _)) => Ok((*item, self.writer.after_queued())),
                None => Err(Error::not_found("open interaction", interaction)),
            };
        };
        let mut records = Vec::new();
        let finished = self.finish(item, &mut records);
        Ok((item, self.store(finished, records)?))
    }

    /// Ends an answered segment and queues a new one in `queue`, marked as a transfer.
    fn transfer(
        &mut self,
        item: WorkItemId,
        queue: QueueId,
        records: &mut Vec<Record>,
    ) -> Result<()> {
        let details = self.require_open(item)?;
        if !matches!(
            self.engine.item(&item).map(|view| view.status),
            Some(ItemStatus::Connected { .. })
        ) {
            return Err(Error::FailedPrecondition(format!(
                "work item {item} is not answered; only answered items can be transferred"
            )));
        }
        if self
            .engine
            .queue_snapshot(&queue, details.record.channel, self.clock.now())
            .is_err()
        {
            return Err(Error::not_found("queue", &queue));
        }
        let now = self.clock.now();
        let next = WorkItemRecord {
            id: WorkItemId::new(),
            segment: details.record.segment + 1,
            is_transfer: true,
            queue,
            arrived_at: now,
            enqueued_at: now,
            ..details.record.clone()
        };
        self.apply(Command::End(item), records)?;
        self.enqueue(next, records).map(|_| ())
    }

    fn open_interactions(&self) -> Vec<OpenInteraction> {
        let mut open = Vec::with_capacity(self.items.len());
        for (id, details) in self.items.iter() {
            let state = if details.wrap_up_since.is_some() {
                "wrap_up"
            } else if details.connected {
                "connected"
            } else {
                match self.engine.item(id).map(|view| view.status) {
                    Some(ItemStatus::Waiting { .. }) => "waiting",
                    Some(ItemStatus::Offered { .. }) => "offered",
                    _ => "answered",
                }
            };
            open.push(OpenInteraction {
                item: *id,
                interaction: details.record.interaction_id.clone(),
                queue: details.queue.clone(),
                state,
                agent: details.agent.clone(),
                arrived_at: details.record.arrived_at,
            });
        }
        open.sort_by_key(|interaction| (interaction.arrived_at, interaction.item));
        open
    }

    fn open_bridge(&mut self, bridge_id: &str) -> (u64, mpsc::UnboundedReceiver<BridgeNotice>) {
        self.last_session += 1;
        let session = self.last_session;
        let (notices, receiver) = mpsc::unbounded_channel();
        for (id, details) in self.items.iter() {
            if details.put_through
                && !details.connected
                && let Some(notice) = self.delivery(*id, details)
            {
                let _ = notices.send(notice);
            }
        }
        let mut records = Vec::new();
        for instruction in self.unsent.drain(..) {
            records.extend(instruction.item().map(Record::Sent));
            let _ = notices.send(instruction);
        }
        self.writer.write_detached(records);
        tracing::info!(bridge = bridge_id, session, "bridge session opened");
        self.bridges.insert(session, notices);
        (session, receiver)
    }

    /// The delivery instruction for an answered item.
    fn delivery(&self, item: WorkItemId, details: &Details) -> Option<BridgeNotice> {
        let agent = details.agent.clone()?;
        let address = self.addresses.get(&agent).cloned().unwrap_or_default();
        Some(BridgeNotice::Deliver {
            item,
            interaction: details.record.interaction_id.clone(),
            agent,
            address,
        })
    }

    fn sign_in(
        &mut self,
        agent: AgentId,
        ready: bool,
    ) -> Result<(u64, mpsc::UnboundedReceiver<AgentNotice>)> {
        if self.engine.agent(&agent).is_none() {
            return Err(Error::not_found("agent", &agent));
        }
        self.last_session += 1;
        let id = self.last_session;
        let (notices, receiver) = mpsc::unbounded_channel();
        let previous = self
            .agent_sessions
            .insert(agent.clone(), AgentSession { id, notices });
        if let Some(previous) = previous {
            tracing::info!(agent = %agent, "a new session takes over from the previous one");
            let _ = previous.notices.send(AgentNotice::GoingAway {
                reason: "another session signed in as this agent",
            });
        }
        let mut records = Vec::new();
        let formal = self
            .engine
            .agent(&agent)
            .is_some_and(|view| view.kind == AgentKind::Formal);
        if formal && !self.presence_reported.contains(&agent) {
            let assumed = Command::SetPresence {
                agent: agent.clone(),
                presence: Presence::Available,
            };
            if let Err(error) = self.apply(assumed, &mut records) {
                tracing::warn!(agent = %agent, %error, "assuming presence failed");
            }
        }
        let signed_in = self.apply(
            Command::SignIn {
                agent: agent.clone(),
                ready,
            },
            &mut records,
        );
        self.writer.write_detached(records);
        if let Err(error) = signed_in {
            self.agent_sessions.remove(&agent);
            return Err(error);
        }
        Ok((id, receiver))
    }

    /// The agent whose current session is `session`.
    fn session_agent(&self, session: u64) -> Option<AgentId> {
        for (agent, open) in &self.agent_sessions {
            if open.id == session {
                return Some(agent.clone());
            }
        }
        None
    }

    /// Applies an agent's command; its answer is due once the returned
    /// commit completes, so an accepted offer is acknowledged only once its
    /// answer is stored.
    fn agent_command(&mut self, session: u64, command: Command) -> Result<Commit> {
        let Some(agent) = self.session_agent(session) else {
            return Err(Error::FailedPrecondition(
                "this session was taken over or has ended".into(),
            ));
        };
        if let Command::Accept { item, .. } = &command
            && self
                .items
                .get(item)
                .is_some_and(|details| details.agent.as_ref() == Some(&agent))
        {
            // Accepted already: the first accept answered UNAVAILABLE when
            // its commit hold ran out (the store away), its answer still
            // queued, and the client retries as told. Acknowledged once that
            // answer is stored.
            return Ok(self.writer.after_queued());
        }
        let signing_out = matches!(command, Command::SignOut(_));
        let mut records = Vec::new();
        let result = self.apply(command, &mut records);
        let commit = self.deliver_after(self.writer.write(records));
        if signing_out && result.is_ok() {
            self.agent_sessions.remove(&agent);
        }
        result.map(|()| commit)
    }

    /// Puts the calls just answered through once `commit` completes, so
    /// that no call is put through to an agent whose answer a crash could
    /// still lose; the returned commit completes after the deliveries are
    /// sent. While the store is down, routing goes on from memory: the call
    /// is put through at once rather than leave the consumer waiting out
    /// the outage (the agent's accept is still acknowledged only once
    /// stored), and so are the calls already held when the store goes down.
    fn deliver_after(&mut self, commit: Commit) -> Commit {
        if self.just_answered.is_empty() {
            return commit;
        }
        let items = std::mem::take(&mut self.just_answered);
        if !self.writer.is_available() {
            self.put_through(&items);
            return commit;
        }
        let committed = self.committed.0.clone();
        let (done, after) = oneshot::channel();
        tokio::spawn(async move {
            // An error is a record refused for good (the writer retries an
            // unavailable store without end): the call is put through all
            // the same, since holding it back would strand the consumer.
            // A closed writer is the server going down: a bridge
            // reconnecting later has the delivery replayed.
            if let Ok(result) = commit.await {
                let _ = committed.send(CommittedAnswers {
                    items,
                    result,
                    done,
                });
            }
        });
        after
    }

    /// Tells the bridges to put the calls of `items` through, once each:
    /// not if the call has since ended or been put through already.
    fn put_through(&mut self, items: &[WorkItemId]) {
        for item in items {
            let Some(details) = self.items.get_mut(item) else {
                continue;
            };
            if !details.delivered
                || details.put_through
                || details.connected
                || details.wrap_up_since.is_some()
            {
                continue;
            }
            details.put_through = true;
            if let Some(delivery) = self
                .items
                .get(item)
                .and_then(|marked| self.delivery(*item, marked))
            {
                self.to_bridges(delivery);
            }
        }
    }

    /// The store went down: the calls whose answers wait for a commit are
    /// put through now.
    fn put_through_held(&mut self) {
        let held: Vec<WorkItemId> = self
            .items
            .iter()
            .filter(|(_, details)| details.delivered && !details.put_through)
            .map(|(id, _)| *id)
            .collect();
        self.put_through(&held);
    }

    fn session_ended(&mut self, agent: &AgentId, session: u64) {
        let current = self.agent_sessions.get(agent).map(|open| open.id);
        if current != Some(session) {
            return;
        }
        self.agent_sessions.remove(agent);
        let mut records = Vec::new();
        if let Err(error) = self.apply(Command::SignOut(agent.clone()), &mut records) {
            tracing::warn!(agent = %agent, %error, "signing out after the session ended failed");
        }
        self.writer.write_detached(records);
        tracing::info!(agent = %agent, "agent session ended; signed out");
    }

    fn presence(
        &mut self,
        updates: Vec<(AgentId, crate::domain::Presence)>,
    ) -> (u32, Vec<AgentId>) {
        let now = self.clock.now();
        let mut records = Vec::new();
        self.fire_timers(now, &mut records);
        let mut applied = 0;
        let mut unknown = Vec::new();
        for (agent, presence) in updates {
            let command = Command::SetPresence {
                agent: agent.clone(),
                presence,
            };
            match self.engine.apply_into(command, now, &mut self.effects) {
                Ok(()) => {
                    applied += 1;
                    self.board.touch_agent(&agent);
                    self.presence_reported.insert(agent);
                }
                Err(_) => unknown.push(agent),
            }
        }
        self.dispatch(now, &mut records);
        self.writer.write_detached(records);
        (applied, unknown)
    }

    fn configure(&mut self, command: Command) -> Result<()> {
        match &command {
            Command::UpsertQueue(queue) => {
                self.metrics.set_queue(queue);
                self.board.set_queue(&queue.id, queue.sl_thresholds);
            }
            Command::UpsertAgent(agent) => {
                self.board.touch_agent(&agent.id);
                self.addresses
                    .insert(agent.id.clone(), agent.uc_address.clone());
            }
            Command::RemoveAgent(agent) if self.agent_sessions.contains_key(agent) => {
                return Err(Error::FailedPrecondition(format!(
                    "agent {agent} is signed in"
                )));
            }
            _ => {}
        }
        let removed_agent = match &command {
            Command::RemoveAgent(agent) => Some(agent.clone()),
            _ => None,
        };
        let removed_queue = match &command {
            Command::RemoveQueue(queue) => Some(queue.clone()),
            _ => None,
        };
        let mut records = Vec::new();
        let result = self.apply(command, &mut records);
        self.writer.write_detached(records);
        if let (Ok(()), Some(agent)) = (&result, removed_agent) {
            self.addresses.remove(&agent);
            self.board.remove_agent(&agent);
        }
        if let (Ok(()), Some(queue)) = (&result, removed_queue) {
            self.metrics.remove_queue(&queue);
            self.board.remove_queue(&queue);
        }
        result
    }

    /// Sends position updates for waiting items whose figures changed.
    fn send_positions(&mut self) {
        if self.bridges.is_empty() {
            return;
        }
        let mut updates = Vec::new();
        let items = &mut self.items;
        self.engine.each_waiting(|id, wait| {
            let Some(details) = items.get_mut(&id) else {
                return;
            };
            let figures = (
                wait.position,
                wait.estimated_wait.map(|wait| wait.as_secs()),
            );
            if details.last_position == Some(figures) {
                return;
            }
            details.last_position = Some(figures);
            updates.push(BridgeNotice::Position {
                item: id,
                position: wait.position,
                estimated_wait: wait.estimated_wait,
            });
        });
        for update in updates {
            self.to_bridges(update);
        }
    }

    /// Sends an instruction to every bridge session, or keeps it, in memory
    /// and in the store, for the next session to open when none is: a
    /// consumer told nothing would be left waiting in a line they are no
    /// longer in, even across a restart.
    fn instruct_bridges(
        &mut self,
        instruction: BridgeNotice,
        now: Timestamp,
        records: &mut Vec<Record>,
    ) {
        if self.to_bridges(instruction.clone()) {
            return;
        }
        let Some(item) = instruction.item() else {
            return;
        };
        let json = serde_json::to_string(&instruction);
        // Kept in memory first: dropping the oldest must not drop this one
        // from the store.
        self.keep_unsent(instruction, records);
        match json {
            Ok(json) => records.push(Record::Unsent(UnsentInstruction {
                work_item: item,
                at: now,
                instruction: json,
            })),
            Err(error) => tracing::error!(%item, %error, "an unsent instruction could not be kept"),
        }
    }

    /// Keeps an instruction for the next bridge session, dropping the
    /// oldest (and telling the store) when too many wait.
    fn keep_unsent(&mut self, instruction: BridgeNotice, records: &mut Vec<Record>) {
        if self.unsent.len() == UNSENT_INSTRUCTIONS
            && let Some(item) = self.unsent.pop_front().and_then(|oldest| oldest.item())
        {
            // The store keeps an item's latest instruction only: it stays
            // while a later one for the item waits here.
            if !self.unsent.iter().any(|later| later.item() == Some(item)) {
                records.push(Record::Sent(item));
            }
            tracing::warn!(
                kept = UNSENT_INSTRUCTIONS,
                "no bridge session for a long while: the oldest unsent instruction is dropped"
            );
        }
        self.unsent.push_back(instruction);
    }

    /// Takes back the instructions no bridge session received before the
    /// restart, oldest first.
    pub(super) fn restore_unsent(&mut self, unsent: Vec<UnsentInstruction>) {
        let mut records = Vec::new();
        for kept in unsent {
            match serde_json::from_str::<BridgeNotice>(&kept.instruction) {
                Ok(instruction) => self.keep_unsent(instruction, &mut records),
                Err(error) => {
                    tracing::error!(item = %kept.work_item, %error, "a stored unsent instruction is unreadable; dropped");
                    records.push(Record::Sent(kept.work_item));
                }
            }
        }
        self.writer.write_detached(records);
    }

    /// Sends a notice to every bridge session; false when none took it.
    fn to_bridges(&self, notice: BridgeNotice) -> bool {
        let mut sent = false;
        for bridge in self.bridges.values() {
            sent |= bridge.send(notice.clone()).is_ok();
        }
        sent
    }

    fn to_agent(&self, agent: &AgentId, notice: AgentNotice) {
        if let Some(session) = self.agent_sessions.get(agent) {
            let _ = session.notices.send(notice);
        }
    }

    /// The queue an item is in, for records of effects that do not carry it.
    fn queue_of(&self, item: WorkItemId) -> QueueId {
        self.items
            .get(&item)
            .map_or_else(|| QueueId::new(""), |details| details.queue.clone())
    }

    /// Forgets a finished item; it and its interaction are remembered a
    /// while, so that a repeated submission or report is answered alike.
    fn close(&mut self, item: WorkItemId) {
        let Some(details) = self.items.remove(&item) else {
            return;
        };
        let interaction = details.record.interaction_id;
        self.closed_ids.insert(item, ());
        self.closed.push_back((item, interaction.clone()));
        if self.closed.len() > RECENTLY_CLOSED
            && let Some((oldest, its_interaction)) = self.closed.pop_front()
        {
            self.closed_ids.remove(&oldest);
            if self
                .closed_items
                .get(&its_interaction)
                .is_some_and(|(last, _)| *last == oldest)
            {
                self.closed_items.remove(&its_interaction);
            }
        }
        if self.interactions.get(&interaction) != Some(&item) {
            return;
        }
        self.interactions.remove(&interaction);
        self.closed_items.insert(interaction, (item, details.queue));
    }

    /// Turns the buffered effects into records and notices.
    fn dispatch(&mut self, now: Timestamp, records: &mut Vec<Record>) {
        let effects = std::mem::take(&mut self.effects);
        for effect in &effects {
            self.dispatch_one(effect, now, records);
        }
        let mut reuse = effects;
        reuse.clear();
        self.effects = reuse;
    }

    fn dispatch_one(&mut self, effect: &Effect, now: Timestamp, records: &mut Vec<Record>) {
        self.board.observe(effect, now);
        match effect {
            Effect::Queued { item, queue, .. } => {
                if let Some(details) = self.items.get_mut(item) {
                    details.queue = queue.clone();
                }
                records.push(event(*item, now, EventKind::Queued, queue.clone(), None));
            }
            Effect::Offered {
                item,
                agent,
                queue,
                expires_at,
                ..
            } => {
                records.push(event(
                    *item,
                    now,
                    EventKind::Offered,
                    queue.clone(),
                    Some(agent.clone()),
                ));
                if let Some(details) = self.items.get(item) {
                    let record = &details.record;
                    let notice = AgentNotice::Offer(Box::new(OfferNotice {
                        item: *item,
                        interaction: record.interaction_id.clone(),
                        channel: record.channel,
                        from_address: record.from_address.clone(),
                        display_name: record.display_name.clone(),
                        attributes: record.attributes.clone(),
                        language: record.language.clone(),
                        queue: queue.clone(),
                        waited: now.since(record.arrived_at),
                        expires_at: *expires_at,
                    }));
                    self.to_agent(agent, notice);
                }
            }
            Effect::OfferEnded {
                item,
                agent,
                reason,
            } => {
                let kind = match reason {
                    OfferEndReason::Declined => EventKind::OfferDeclined,
                    OfferEndReason::TimedOut => EventKind::OfferTimedOut,
                    OfferEndReason::Rescinded => EventKind::OfferRescinded,
                };
                let queue = self.queue_of(*item);
                if let Some(details) = self.items.get(item) {
                    let result = match reason {
                        OfferEndReason::Declined => "declined",
                        OfferEndReason::TimedOut => "timeout",
                        OfferEndReason::Rescinded => "rescinded",
                    };
                    self.metrics
                        .offer_ended(&queue, details.record.channel, result);
                }
                records.push(event(*item, now, kind, queue, Some(agent.clone())));
                self.to_agent(
                    agent,
                    AgentNotice::OfferEnded {
                        item: *item,
                        reason: *reason,
                    },
                );
            }
            Effect::Answered {
                item,
                agent,
                queue,
                channel,
                waited,
                ..
            } => {
                let within = self.board.within(queue, *channel, *waited);
                self.metrics.answered(queue, *channel, *waited, within);
                records.push(event(
                    *item,
                    now,
                    EventKind::Answered,
                    queue.clone(),
                    Some(agent.clone()),
                ));
                if let Some(details) = self.items.get_mut(item) {
                    details.agent = Some(agent.clone());
                    details.delivered = true;
                }
                self.just_answered.push(*item);
            }
            Effect::Abandoned {
                item,
                queue,
                channel,
                waited,
                ..
            } => {
                let within = self.board.within(queue, *channel, *waited);
                self.metrics.abandoned(queue, *channel, *waited, within);
                records.push(event(*item, now, EventKind::Abandoned, queue.clone(), None));
                self.close(*item);
            }
            Effect::Overflowed {
                item,
                from,
                to,
                channel,
                reason,
            } => {
                self.metrics.overflowed(from, *channel, limit_name(*reason));
                let detail =
                    serde_json::json!({ "from": from.as_str(), "reason": limit_name(*reason) });
                records.push(event_with(
                    *item,
                    now,
                    EventKind::Overflowed,
                    to.clone(),
                    detail.to_string(),
                ));
                if let Some(details) = self.items.get_mut(item) {
                    details.queue = to.clone();
                }
                self.instruct_bridges(
                    BridgeNotice::Overflow {
                        item: *item,
                        from: from.clone(),
                        to: to.clone(),
                        reason: limit_name(*reason).to_string(),
                    },
                    now,
                    records,
                );
            }
            Effect::Rejected {
                item,
                queue,
                channel,
                reason,
            } => {
                self.metrics.rejected(queue, *channel, limit_name(*reason));
                let detail = serde_json::json!({ "reason": limit_name(*reason) });
                records.push(event_with(
                    *item,
                    now,
                    EventKind::Rejected,
                    queue.clone(),
                    detail.to_string(),
                ));
                self.close(*item);
            }
            Effect::Disposed {
                item,
                queue,
                channel,
                disposition,
                reason,
                waited,
            } => {
                self.metrics
                    .disposed(queue, *channel, limit_name(*reason), *waited);
                let (kind, message) = match disposition {
                    Disposition::Voicemail => (DisconnectKind::Voicemail, String::new()),
                    Disposition::Callback => (DisconnectKind::Callback, String::new()),
                    Disposition::Disconnect { message } => {
                        (DisconnectKind::Message, message.clone())
                    }
                    Disposition::Reject | Disposition::Overflow { .. } => {
                        (DisconnectKind::Message, String::new())
                    }
                };
                let detail = serde_json::json!({ "disposition": disposition, "reason": limit_name(*reason) });
                records.push(event_with(
                    *item,
                    now,
                    EventKind::Disposed,
                    queue.clone(),
                    detail.to_string(),
                ));
                self.instruct_bridges(
                    BridgeNotice::Disconnect {
                        item: *item,
                        kind,
                        message,
                        reason: limit_name(*reason).to_string(),
                    },
                    now,
                    records,
                );
                self.close(*item);
            }
            Effect::Completed {
                item,
                agent,
                queue,
                channel,
                handle_time,
                wrap_up_until,
            } => {
                self.metrics.handled(queue, *channel, *handle_time);
                records.push(event(
                    *item,
                    now,
                    EventKind::Ended,
                    queue.clone(),
                    Some(agent.clone()),
                ));
                let wrap_up = wrap_up_until.map_or(Duration::ZERO, |until| until.since(now));
                self.to_agent(
                    agent,
                    AgentNotice::ItemEnded {
                        item: *item,
                        wrap_up,
                    },
                );
                if wrap_up_until.is_none() {
                    records.push(event(
                        *item,
                        now,
                        EventKind::Completed,
                        queue.clone(),
                        Some(agent.clone()),
                    ));
                    self.close(*item);
                } else if let Some(details) = self.items.get_mut(item) {
                    details.wrap_up_since = Some(now);
                }
            }
            Effect::WrapUpEnded {
                item,
                agent,
                queue,
                channel,
                ..
            } => {
                if let Some(since) = self
                    .items
                    .get(item)
                    .and_then(|details| details.wrap_up_since)
                {
                    self.metrics.wrapped_up(queue, *channel, now.since(since));
                }
                records.push(event(
                    *item,
                    now,
                    EventKind::Completed,
                    queue.clone(),
                    Some(agent.clone()),
                ));
                self.close(*item);
            }
            Effect::AgentState { agent, state, at } => {
                let reason = match state {
                    crate::domain::RoutingState::NotReady { reason } => Some(reason.clone()),
                    _ => None,
                };
                records.push(Record::AgentState(AgentStateRecord {
                    agent: agent.clone(),
                    at: *at,
                    state: state.as_str().to_string(),
                    reason,
                }));
                self.to_agent(
                    agent,
                    AgentNotice::State {
                        state: state.clone(),
                        since: *at,
                    },
                );
            }
            Effect::Cancelled { item, queue, .. } => {
                records.push(event(*item, now, EventKind::Cancelled, queue.clone(), None));
                self.instruct_bridges(
                    BridgeNotice::Disconnect {
                        item: *item,
                        kind: DisconnectKind::Cancelled,
                        message: String::new(),
                        reason: "supervisor".to_string(),
                    },
                    now,
                    records,
                );
                self.close(*item);
            }
            Effect::Moved { item, to, .. } => {
                records.push(event(*item, now, EventKind::Moved, to.clone(), None));
                if let Some(details) = self.items.get_mut(item) {
                    details.queue = to.clone();
                }
            }
            Effect::Reprioritised {
                item,
                queue,
                priority,
            } => {
                records.push(Record::Event(WorkItemEvent {
                    priority: Some(*priority),
                    ..event_of(*item, now, EventKind::Reprioritised, queue.clone(), None)
                }));
            }
        }
    }
}

/// Sleeps until `deadline`, or for ever without one (the select guard skips it then).
async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// The engine's view of a work item record.
fn new_work_item(record: &WorkItemRecord) -> NewWorkItem {
    NewWorkItem {
        id: record.id,
        interaction: record.interaction_id.clone(),
        channel: record.channel,
        queue: record.queue.clone(),
        language: record.language.clone(),
        priority: record.priority,
        skills: record.required_skills.clone(),
        arrived_at: record.arrived_at,
        enqueued_at: record.enqueued_at,
        transfer: record.is_transfer,
    }
}

/// A lifecycle event with no detail.
fn event_of(
    item: WorkItemId,
    at: Timestamp,
    kind: EventKind,
    queue: QueueId,
    agent: Option<AgentId>,
) -> WorkItemEvent {
    WorkItemEvent {
        work_item: item,
        at,
        kind,
        queue,
        agent,
        priority: None,
        detail: "{}".into(),
    }
}

/// A lifecycle event record with no detail.
fn event(
    item: WorkItemId,
    at: Timestamp,
    kind: EventKind,
    queue: QueueId,
    agent: Option<AgentId>,
) -> Record {
    Record::Event(event_of(item, at, kind, queue, agent))
}

/// A lifecycle event record of no agent, with a JSON detail.
fn event_with(
    item: WorkItemId,
    at: Timestamp,
    kind: EventKind,
    queue: QueueId,
    detail: String,
) -> Record {
    Record::Event(WorkItemEvent {
        detail,
        ..event_of(item, at, kind, queue, None)
    })
}

/// A limit's name in records and instructions.
fn limit_name(reason: LimitReason) -> &'static str {
    match reason {
        LimitReason::Full => "queue_full",
        LimitReason::MaxWait => "max_wait",
        LimitReason::NoAgents => "no_agents",
        LimitReason::OverflowFailed => "overflow_failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Channel, Queue};
    use crate::metrics::StoreMetrics;
    use crate::store::writer::WriterConfig;

    fn submission(interaction: &str, queue: &str) -> Submission {
        Submission {
            interaction_id: interaction.into(),
            channel: Channel::Voice,
            from_address: "sip:consumer@example.com".into(),
            to_address: String::new(),
            display_name: String::new(),
            entry_point: None,
            queue: Some(queue.into()),
            language: None,
            attributes: Default::default(),
            priority: 0,
            required_skills: Vec::new(),
        }
    }

    /// Hands a submission to the router as `Live::submit` does.
    fn submit(router: &mut Router, submission: Submission) -> Result<Submitted> {
        let (reply, mut answer) = oneshot::channel();
        let (done, _commit) = oneshot::channel();
        router.handle(Op::Submit {
            submission,
            reply,
            done,
        });
        answer.try_recv().expect("the router replies at once")
    }

    /// A router driven without its loop, its writer storing into a fresh
    /// SQLite database.
    struct Fixture {
        router: Router,
        writer_task: tokio::task::JoinHandle<()>,
        store: Arc<dyn crate::store::Store>,
        _dir: tempfile::TempDir,
    }

    impl Fixture {
        async fn new(queues: Vec<Queue>) -> Self {
            let dir = tempfile::tempdir().expect("a temporary directory");
            let store = crate::store::sqlite_in(&dir).await;
            let registry = prometheus::Registry::new();
            let observer = Arc::new(StoreMetrics::register(&registry).expect("fresh metrics"));
            let (writer, writer_task) =
                Writer::spawn(store.clone(), WriterConfig::default(), observer);
            let metrics = RoutingMetrics::register(&registry, &queues).expect("fresh metrics");
            let (stats, _) = broadcast::channel(4);
            let mut router = Router::new(
                Clock::start(),
                writer,
                LiveConfig::default(),
                metrics,
                stats,
            );
            router.load_configuration(queues, Vec::new(), Vec::new());
            Self {
                router,
                writer_task,
                store,
                _dir: dir,
            }
        }

        /// Stops the router, waits for the writer to store what it was
        /// given, and answers the stored state of each interaction.
        async fn stored_states(self, interactions: &[&str]) -> Vec<Option<String>> {
            drop(self.router);
            self.writer_task.await.expect("the writer flushes and ends");
            let ids: Vec<InteractionId> = interactions.iter().map(|id| (*id).into()).collect();
            let stored = self
                .store
                .find_work_items(&ids)
                .await
                .expect("the store answers");
            ids.iter()
                .map(|id| {
                    stored
                        .iter()
                        .find(|item| item.item.interaction_id == *id)
                        .map(|item| item.state.clone())
                })
                .collect()
        }
    }

    /// A queue whose items leave it once they have waited a second: they
    /// are disconnected, and stored as disposed.
    fn impatient(id: &str) -> Queue {
        let mut queue = Queue::new(id.into());
        queue.limits.max_wait_secs = Some(1);
        queue
    }

    /// Lets the longest wait of an impatient queue's items pass on the
    /// router's clock, in paused time, then runs `operation` before tokio's
    /// clock resumes for the store.
    async fn after_the_longest_wait<T>(operation: impl FnOnce() -> T) -> T {
        tokio::time::pause();
        tokio::time::advance(Duration::from_millis(1_100)).await;
        let outcome = operation();
        tokio::time::resume();
        outcome
    }

    #[tokio::test]
    async fn a_refused_submission_keeps_the_records_of_the_timers_it_fired() {
        let mut fixture = Fixture::new(vec![impatient("sales")]).await;
        submit(&mut fixture.router, submission("waits", "sales")).expect("accepted");
        // The router's loop is not running: only the next operation fires
        // the item's timer, once its longest wait has passed.
        let refused =
            after_the_longest_wait(|| submit(&mut fixture.router, submission("lost", "nowhere")))
                .await;
        assert!(refused.is_err(), "a queue that does not exist is refused");

        let states = fixture.stored_states(&["waits"]).await;
        assert_eq!(
            states[0].as_deref(),
            Some("disposed"),
            "the end the timer gave the waiting item is stored"
        );
    }

    #[tokio::test]
    async fn a_refused_report_keeps_the_records_of_the_timers_it_fired() {
        let queues = vec![impatient("sales"), Queue::new("support".into())];
        let mut fixture = Fixture::new(queues).await;
        submit(&mut fixture.router, submission("waits", "sales")).expect("accepted");
        let still = submit(&mut fixture.router, submission("still", "support")).expect("accepted");
        // Only the next operation fires the first item's timer, once its
        // longest wait has passed: here a report the router refuses.
        let refused =
            after_the_longest_wait(|| fixture.router.report(BridgeReport::Ended(still.item))).await;
        assert!(
            matches!(refused, Err(Error::FailedPrecondition(_))),
            "an item still waiting cannot end"
        );

        let states = fixture.stored_states(&["waits", "still"]).await;
        assert_eq!(
            states[0].as_deref(),
            Some("disposed"),
            "the end the timer gave the first item is stored"
        );
        assert_eq!(states[1].as_deref(), Some("waiting"));
    }

    #[tokio::test]
    async fn a_hang_up_as_the_longest_wait_runs_out_keeps_the_end_the_timer_gave() {
        let mut fixture = Fixture::new(vec![impatient("sales")]).await;
        submit(&mut fixture.router, submission("waits", "sales")).expect("accepted");
        // The hang-up fires the item's own timer first, which ends it.
        let ended =
            after_the_longest_wait(|| fixture.router.end_interaction(&"waits".into())).await;
        assert!(
            ended.is_ok(),
            "the interaction has ended, one way or the other"
        );

        let states = fixture.stored_states(&["waits"]).await;
        assert_eq!(
            states[0].as_deref(),
            Some("disposed"),
            "the end the timer gave is stored, not an abandon"
        );
    }
}
