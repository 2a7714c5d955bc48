//! Unit tests of the engine's rules, in virtual time.

use super::*;
use crate::domain::{
    Agent, AgentKind, Channel, ChannelCapacity, Disposition, InteractionId, Presence, Queue,
    RoutingState, RoutingStep, SelectionStrategy, SkillRequirement,
};

fn at(secs: i64) -> Timestamp {
    Timestamp::from_secs(secs)
}

fn item_id(n: u128) -> WorkItemId {
    WorkItemId(uuid::Uuid::from_u128(n))
}

fn agent(id: &str, queues: &[&str], skills: &[(&str, u8)]) -> Agent {
    Agent {
        id: AgentId::new(id),
        display_name: id.to_owned(),
        uc_address: format!("sip:{id}@contoso.example"),
        kind: AgentKind::Formal,
        skills: skills
            .iter()
            .map(|(name, level)| (SkillName::new(name), *level))
            .collect(),
        capacity: ChannelCapacity::default(),
        chat_during_calls: false,
        queues: queues.iter().map(QueueId::new).collect(),
    }
}

fn requirement(skill: &str, min_level: u8) -> SkillRequirement {
    SkillRequirement {
        skill: SkillName::new(skill),
        min_level,
    }
}

fn new_item(n: u128, queue: &str, channel: Channel, priority: i32, enqueued: i64) -> NewWorkItem {
    NewWorkItem {
        id: item_id(n),
        interaction: InteractionId::new(format!("i{n}")),
        channel,
        queue: QueueId::new(queue),
        language: None,
        priority,
        skills: Vec::new(),
        arrived_at: at(enqueued),
        enqueued_at: at(enqueued),
        transfer: false,
    }
}

/// A test bench: an engine plus shorthand for common commands.
struct Bench {
    engine: Engine,
}

impl Bench {
    fn new(queues: Vec<Queue>) -> Self {
        let mut engine = Engine::new();
        for queue in queues {
            engine
                .apply(Command::UpsertQueue(queue), at(0))
                .expect("valid queue");
        }
        Self { engine }
    }

    fn apply(&mut self, command: Command, secs: i64) -> Vec<Effect> {
        self.engine
            .apply(command, at(secs))
            .expect("command accepted")
    }

    /// Adds an agent, present, signed in and ready.
    fn ready(&mut self, config: Agent, secs: i64) -> Vec<Effect> {
        let id = config.id.clone();
        self.apply(Command::UpsertAgent(config), secs);
        self.apply(
            Command::SetPresence {
                agent: id.clone(),
                presence: Presence::Available,
            },
            secs,
        );
        self.apply(
            Command::SignIn {
                agent: id,
                ready: true,
            },
            secs,
        )
    }

    fn submit(&mut self, item: NewWorkItem, secs: i64) -> Vec<Effect> {
        self.apply(Command::Submit(item), secs)
    }

    fn accept_and_end(&mut self, n: u128, agent: &str, secs: i64) -> Vec<Effect> {
        self.apply(
            Command::Accept {
                item: item_id(n),
                agent: AgentId::new(agent),
            },
            secs,
        );
        self.apply(Command::End(item_id(n)), secs)
    }
}

/// The (item, agent) pairs offered in some effects.
fn offers(effects: &[Effect]) -> Vec<(WorkItemId, String)> {
    let mut found = Vec::new();
    for effect in effects {
        if let Effect::Offered { item, agent, .. } = effect {
            found.push((*item, agent.to_string()));
        }
    }
    found
}

fn offered(n: u128, agent: &str) -> Vec<(WorkItemId, String)> {
    vec![(item_id(n), agent.to_owned())]
}

#[test]
fn higher_priority_first_then_earlier_enqueue_taken_from_the_command() {
    let mut bench = Bench::new(vec![Queue::new("sales".into())]);
    bench.submit(new_item(1, "sales", Channel::Voice, 0, 5), 10);
    bench.submit(new_item(2, "sales", Channel::Voice, 1, 9), 10);
    // Recovered item: enqueued before item 1 although submitted after it.
    bench.submit(new_item(3, "sales", Channel::Voice, 0, 2), 10);
    let effects = bench.ready(agent("ann", &["sales"], &[]), 11);
    assert_eq!(offers(&effects), offered(2, "ann"));
    let effects = bench.accept_and_end(2, "ann", 12);
    assert_eq!(offers(&effects), offered(3, "ann"));
    let effects = bench.accept_and_end(3, "ann", 13);
    assert_eq!(offers(&effects), offered(1, "ann"));
}

#[test]
fn priority_aging_lets_old_low_priority_work_overtake() {
    let mut queue = Queue::new("sales".into());
    queue.priority_aging_secs = Some(10);
    let mut bench = Bench::new(vec![queue]);
    bench.submit(new_item(1, "sales", Channel::Voice, 0, 0), 0);
    bench.submit(new_item(2, "sales", Channel::Voice, 1, 15), 15);
    // At 16 s item 1 has aged 1.6 levels, item 2 has 1 + 0.1.
    let effects = bench.ready(agent("ann", &["sales"], &[]), 16);
    assert_eq!(offers(&effects), offered(1, "ann"));
}

fn two_step_queue() -> Queue {
    let mut queue = Queue::new("billing".into());
    queue.steps = vec![
        RoutingStep {
            requirements: vec![requirement("billing", 4)],
            match_language: false,
            duration_secs: Some(30),
        },
        RoutingStep {
            requirements: vec![requirement("billing", 2)],
            match_language: true,
            duration_secs: None,
        },
    ];
    queue
}

#[test]
fn routing_steps_relax_with_time_waited() {
    let mut bench = Bench::new(vec![two_step_queue()]);
    bench.ready(agent("junior", &["billing"], &[("billing", 2)]), 0);
    let effects = bench.submit(new_item(1, "billing", Channel::Voice, 0, 0), 0);
    assert!(offers(&effects).is_empty());
    assert_eq!(bench.engine.next_deadline(), Some(at(30)));
    assert!(offers(&bench.engine.tick(at(29))).is_empty());
    assert_eq!(offers(&bench.engine.tick(at(30))), offered(1, "junior"));
}

#[test]
fn language_and_extra_skills_are_required() {
    let mut bench = Bench::new(vec![two_step_queue()]);
    bench.ready(
        agent("en", &["billing"], &[("billing", 5), ("lang:en", 1)]),
        0,
    );
    let mut french = new_item(1, "billing", Channel::Voice, 0, 0);
    french.language = Some("fr".to_owned());
    french.skills = vec![requirement("vip", 1)];
    bench.submit(french, 0);
    // Step 2 matches language: the English speaker never fits.
    assert!(offers(&bench.engine.tick(at(31))).is_empty());
    let plain = agent("fr", &["billing"], &[("billing", 5), ("lang:fr", 1)]);
    assert!(
        offers(&bench.ready(plain, 32)).is_empty(),
        "lacks the extra vip skill"
    );
    let vip = agent(
        "fr",
        &["billing"],
        &[("billing", 5), ("lang:fr", 1), ("vip", 1)],
    );
    let effects = bench.apply(Command::UpsertAgent(vip), 33);
    assert_eq!(offers(&effects), offered(1, "fr"));
}

fn strategy_queue(strategy: SelectionStrategy) -> Queue {
    let mut queue = Queue::new("sales".into());
    queue.strategy = strategy;
    queue.steps[0].requirements = vec![requirement("sales", 1)];
    queue
}

#[test]
fn longest_idle_agent_is_chosen_by_default() {
    let mut bench = Bench::new(vec![strategy_queue(SelectionStrategy::LongestIdle)]);
    bench.ready(agent("late", &["sales"], &[("sales", 5)]), 5);
    bench.ready(agent("early", &["sales"], &[("sales", 1)]), 5);
    bench.apply(
        Command::SetPresence {
            agent: "late".into(),
            presence: Presence::Away,
        },
        6,
    );
    bench.apply(
        Command::SetPresence {
            agent: "late".into(),
            presence: Presence::Available,
        },
        7,
    );
    let effects = bench.submit(new_item(1, "sales", Channel::Voice, 0, 8), 8);
    assert_eq!(offers(&effects), offered(1, "early"));
}

#[test]
fn most_skilled_agent_is_chosen() {
    let mut bench = Bench::new(vec![strategy_queue(SelectionStrategy::MostSkilled)]);
    bench.ready(agent("novice", &["sales"], &[("sales", 1)]), 0);
    bench.ready(agent("expert", &["sales"], &[("sales", 5)]), 1);
    let effects = bench.submit(new_item(1, "sales", Channel::Voice, 0, 2), 2);
    assert_eq!(offers(&effects), offered(1, "expert"));
}

#[test]
fn round_robin_takes_agents_in_turn() {
    let mut bench = Bench::new(vec![strategy_queue(SelectionStrategy::RoundRobin)]);
    for name in ["a", "b", "c"] {
        let mut config = agent(name, &["sales"], &[("sales", 1)]);
        config.capacity.chat = 5;
        bench.ready(config, 0);
    }
    let mut chosen = Vec::new();
    for n in 1..=4 {
        let effects = bench.submit(new_item(n, "sales", Channel::Chat, 0, 1), 1);
        chosen.push(offers(&effects)[0].1.clone());
    }
    assert_eq!(chosen, ["a", "b", "c", "a"]);
}

#[test]
fn least_occupied_agent_is_chosen() {
    let mut bench = Bench::new(vec![strategy_queue(SelectionStrategy::LeastOccupied)]);
    bench.ready(agent("busy", &["sales"], &[("sales", 1)]), 0);
    bench.submit(new_item(1, "sales", Channel::Voice, 0, 0), 0);
    bench.apply(
        Command::Accept {
            item: item_id(1),
            agent: "busy".into(),
        },
        0,
    );
    bench.apply(Command::End(item_id(1)), 600);
    bench.ready(agent("fresh", &["sales"], &[("sales", 1)]), 700);
    // "busy" has been idle longer (since 600 s) but worked 10 minutes this hour.
    let effects = bench.submit(new_item(2, "sales", Channel::Voice, 0, 800), 800);
    assert_eq!(offers(&effects), offered(2, "fresh"));
}

#[test]
fn cross_queue_rule_weighs_queue_priority_then_first_arrival() {
    let mut urgent = Queue::new("urgent".into());
    urgent.priority = 1;
    let mut bench = Bench::new(vec![
        Queue::new("plain".into()),
        Queue::new("other".into()),
        urgent,
    ]);
    bench.submit(new_item(1, "plain", Channel::Voice, 0, 0), 0);
    bench.submit(new_item(2, "other", Channel::Voice, 0, 5), 5);
    bench.submit(new_item(3, "urgent", Channel::Voice, 0, 9), 9);
    let effects = bench.ready(agent("ann", &["plain", "other", "urgent"], &[]), 10);
    assert_eq!(offers(&effects), offered(3, "ann"));
    let effects = bench.accept_and_end(3, "ann", 11);
    assert_eq!(
        offers(&effects),
        offered(1, "ann"),
        "equal weight: first arrival wins"
    );
}

#[test]
fn capacity_is_per_channel_and_calls_exclude_other_work() {
    let mut bench = Bench::new(vec![Queue::new("sales".into())]);
    let mut config = agent("ann", &["sales"], &[]);
    config.capacity.chat = 2;
    bench.ready(config.clone(), 0);
    bench.submit(new_item(1, "sales", Channel::Chat, 0, 0), 0);
    bench.submit(new_item(2, "sales", Channel::Chat, 0, 0), 0);
    let effects = bench.submit(new_item(3, "sales", Channel::Chat, 0, 0), 0);
    assert!(offers(&effects).is_empty(), "two chats fill the capacity");
    let effects = bench.submit(new_item(4, "sales", Channel::Voice, 0, 0), 0);
    assert!(
        offers(&effects).is_empty(),
        "a call waits while chats are open"
    );
    let ann = bench.engine.agent(&"ann".into()).expect("ann exists");
    assert_eq!(ann.load, [0, 2, 0]);
    config.chat_during_calls = true;
    let effects = bench.apply(Command::UpsertAgent(config), 1);
    assert_eq!(offers(&effects), offered(4, "ann"));
}

#[test]
fn decline_keeps_the_place_and_skips_the_agent_until_the_reoffer_delay() {
    let mut queue = Queue::new("sales".into());
    queue.reoffer_delay_secs = 20;
    let mut bench = Bench::new(vec![queue]);
    bench.submit(new_item(1, "sales", Channel::Voice, 0, 0), 0);
    bench.submit(new_item(2, "sales", Channel::Voice, 0, 1), 1);
    bench.ready(agent("ann", &["sales"], &[]), 2);
    let effects = bench.apply(
        Command::Decline {
            item: item_id(1),
            agent: "ann".into(),
        },
        3,
    );
    // Ann skips item 1 for now and gets item 2; Bob gets item 1, still first in line.
    assert_eq!(offers(&effects), offered(2, "ann"));
    bench.apply(
        Command::Decline {
            item: item_id(2),
            agent: "ann".into(),
        },
        4,
    );
    let effects = bench.ready(agent("bob", &["sales"], &[]), 5);
    assert_eq!(offers(&effects), offered(1, "bob"));
    bench.apply(
        Command::Accept {
            item: item_id(1),
            agent: "bob".into(),
        },
        6,
    );
    assert!(offers(&bench.engine.tick(at(23))).is_empty());
    assert_eq!(offers(&bench.engine.tick(at(24))), offered(2, "ann"));
}

#[test]
fn the_latest_decline_sets_the_cooldown_after_the_delay_was_shortened() {
    let mut queue = Queue::new("sales".into());
    queue.reoffer_delay_secs = 20;
    let mut bench = Bench::new(vec![queue.clone()]);
    bench.submit(new_item(1, "sales", Channel::Voice, 0, 0), 0);
    bench.ready(agent("ann", &["sales"], &[]), 1);
    let decline = Command::Decline {
        item: item_id(1),
        agent: "ann".into(),
    };
    bench.apply(decline.clone(), 2);
    queue.reoffer_delay_secs = 2;
    bench.apply(Command::UpsertQueue(queue), 3);
    // A supervisor hands the item to Ann anyway; she declines it again.
    let effects = bench.apply(
        Command::Assign {
            item: item_id(1),
            agent: "ann".into(),
        },
        4,
    );
    assert_eq!(offers(&effects), offered(1, "ann"));
    bench.apply(decline, 5);
    assert!(offers(&bench.engine.tick(at(6))).is_empty());
    assert_eq!(offers(&bench.engine.tick(at(7))), offered(1, "ann"));
}

#[test]
fn missed_offers_make_the_agent_not_responding_until_ready() {
    let mut queue = Queue::new("sales".into());
    queue.max_no_answer = 2;
    queue.offer_timeout_secs = 10;
    queue.reoffer_delay_secs = 0;
    let mut bench = Bench::new(vec![queue]);
    bench.ready(agent("ann", &["sales"], &[]), 0);
    bench.submit(new_item(1, "sales", Channel::Voice, 0, 0), 0);
    let effects = bench.engine.tick(at(10));
    assert!(effects.contains(&Effect::OfferEnded {
        item: item_id(1),
        agent: "ann".into(),
        reason: OfferEndReason::TimedOut,
    }));
    assert_eq!(offers(&effects), offered(1, "ann"));
    let effects = bench.engine.tick(at(20));
    assert!(offers(&effects).is_empty());
    let ann = bench.engine.agent(&"ann".into()).expect("ann exists");
    assert_eq!(ann.state, RoutingState::NotResponding);
    let effects = bench.apply(Command::SetReady("ann".into()), 30);
    assert_eq!(offers(&effects), offered(1, "ann"));
}

/// A queue with a wrap-up time, Ann ready in it, and item 1 offered to her.
fn wrapping_bench(wrap_up_secs: u32) -> Bench {
    let mut queue = Queue::new("sales".into());
    queue.wrap_up_secs = wrap_up_secs;
    let mut bench = Bench::new(vec![queue]);
    bench.ready(agent("ann", &["sales"], &[]), 0);
    bench.submit(new_item(1, "sales", Channel::Voice, 0, 0), 0);
    bench
}

#[test]
fn wrap_up_holds_capacity_until_it_ends_or_is_finished() {
    let mut bench = wrapping_bench(60);
    bench.submit(new_item(2, "sales", Channel::Voice, 0, 0), 0);
    let effects = bench.accept_and_end(1, "ann", 10);
    assert!(offers(&effects).is_empty());
    let ann = bench.engine.agent(&"ann".into()).expect("ann exists");
    assert_eq!(ann.state, RoutingState::WrapUp);
    assert_eq!(offers(&bench.engine.tick(at(70))), offered(2, "ann"));
    bench.submit(new_item(3, "sales", Channel::Voice, 0, 71), 71);
    bench.accept_and_end(2, "ann", 80);
    let effects = bench.apply(Command::FinishWrapUp("ann".into()), 85);
    assert_eq!(offers(&effects), offered(3, "ann"));
}

#[test]
fn abandon_while_offered_rescinds_and_frees_the_agent() {
    let mut bench = Bench::new(vec![Queue::new("sales".into())]);
    bench.ready(agent("ann", &["sales"], &[]), 0);
    bench.submit(new_item(1, "sales", Channel::Voice, 0, 0), 0);
    bench.submit(new_item(2, "sales", Channel::Voice, 0, 1), 1);
    let effects = bench.apply(Command::Abandon(item_id(1)), 7);
    assert!(effects.contains(&Effect::Abandoned {
        item: item_id(1),
        queue: "sales".into(),
        channel: Channel::Voice,
        waited: std::time::Duration::from_secs(7),
        was_offered: true,
        transfer: false,
    }));
    assert_eq!(offers(&effects), offered(2, "ann"));
    assert!(bench.engine.item(&item_id(1)).is_none());
}

#[test]
fn queue_limits_reject_overflow_and_dispose() {
    let mut small = Queue::new("small".into());
    small.limits.max_waiting = Some(1);
    small.limits.when_full = Some(Disposition::Overflow {
        queue: "big".into(),
    });
    small.limits.max_wait_secs = Some(60);
    small.limits.when_max_wait = Some(Disposition::Voicemail);
    let mut big = Queue::new("big".into());
    big.limits.max_waiting = Some(1);
    let mut staffed = Queue::new("staffed".into());
    staffed.limits.when_no_agents = Some(Disposition::Callback);
    let mut bench = Bench::new(vec![small, big, staffed]);
    bench.submit(new_item(1, "small", Channel::Voice, 0, 0), 0);
    let effects = bench.submit(new_item(2, "small", Channel::Voice, 0, 0), 0);
    assert!(matches!(
        effects[0],
        Effect::Overflowed {
            reason: LimitReason::Full,
            ..
        }
    ));
    assert!(matches!(effects[1], Effect::Queued { ref queue, .. } if queue.as_str() == "big"));
    let effects = bench.submit(new_item(3, "big", Channel::Voice, 0, 0), 0);
    assert!(matches!(
        effects[0],
        Effect::Rejected {
            reason: LimitReason::Full,
            ..
        }
    ));
    let effects = bench.engine.tick(at(60));
    assert!(matches!(
        effects[0],
        Effect::Disposed {
            disposition: Disposition::Voicemail,
            reason: LimitReason::MaxWait,
            ..
        }
    ));
    let effects = bench.submit(new_item(4, "staffed", Channel::Voice, 0, 61), 61);
    assert!(matches!(
        effects[0],
        Effect::Disposed {
            reason: LimitReason::NoAgents,
            ..
        }
    ));
}

#[test]
fn overflow_keeps_the_first_arrival_for_sla() {
    let mut first = Queue::new("first".into());
    first.limits.max_wait_secs = Some(30);
    first.limits.when_max_wait = Some(Disposition::Overflow {
        queue: "second".into(),
    });
    let mut bench = Bench::new(vec![first, Queue::new("second".into())]);
    bench.submit(new_item(1, "first", Channel::Voice, 0, 0), 0);
    bench.engine.tick(at(30));
    bench.ready(agent("ann", &["second"], &[]), 40);
    let effects = bench.apply(
        Command::Accept {
            item: item_id(1),
            agent: "ann".into(),
        },
        45,
    );
    assert!(matches!(effects[0], Effect::Answered { waited, .. } if waited.as_secs() == 45));
}

#[test]
fn estimated_wait_follows_position_and_staffing() {
    let mut bench = Bench::new(vec![Queue::new("sales".into())]);
    bench.ready(agent("ann", &["sales"], &[]), 0);
    let estimate = bench
        .engine
        .estimate_wait(&"sales".into(), Channel::Voice, None, &[], at(0))
        .expect("queue exists");
    assert_eq!(
        (estimate.agents_available, estimate.estimated_wait),
        (1, Some(std::time::Duration::ZERO))
    );
    bench.submit(new_item(1, "sales", Channel::Voice, 0, 0), 0);
    bench.submit(new_item(2, "sales", Channel::Voice, 0, 0), 0);
    bench.submit(new_item(3, "sales", Channel::Voice, 0, 0), 0);
    let third = bench.engine.item_wait(&item_id(3)).expect("item 3 waits");
    assert_eq!(third.position, 2);
    assert_eq!(
        third.estimated_wait,
        Some(std::time::Duration::from_secs(360))
    );
    // Bob signs in but his UC client is offline: he counts as staff, not as free.
    bench.apply(Command::UpsertAgent(agent("bob", &["sales"], &[])), 1);
    bench.apply(
        Command::SignIn {
            agent: "bob".into(),
            ready: true,
        },
        1,
    );
    let second = bench.engine.item_wait(&item_id(3)).expect("item 3 waits");
    assert_eq!(
        second.estimated_wait,
        Some(std::time::Duration::from_secs(180))
    );
    let snapshot = bench
        .engine
        .queue_snapshot(&"sales".into(), Channel::Voice, at(10))
        .expect("queue");
    assert_eq!((snapshot.waiting, snapshot.agents_signed_in), (2, 2));
}

#[test]
fn informal_agents_route_on_presence_alone() {
    let mut bench = Bench::new(vec![Queue::new("help".into())]);
    let mut config = agent("lync", &["help"], &[]);
    config.kind = AgentKind::Informal;
    bench.apply(Command::UpsertAgent(config), 0);
    bench.submit(new_item(1, "help", Channel::Chat, 0, 0), 0);
    let effects = bench.apply(
        Command::SetPresence {
            agent: "lync".into(),
            presence: Presence::Available,
        },
        1,
    );
    assert_eq!(offers(&effects), offered(1, "lync"));
}

#[test]
fn supervisor_assign_bypasses_skills_and_move_keeps_arrival() {
    let mut bench = Bench::new(vec![
        strategy_queue(SelectionStrategy::LongestIdle),
        Queue::new("any".into()),
    ]);
    bench.ready(agent("ann", &["sales"], &[]), 0);
    bench.submit(new_item(1, "sales", Channel::Voice, 0, 0), 0);
    let effects = bench.apply(
        Command::Assign {
            item: item_id(1),
            agent: "ann".into(),
        },
        1,
    );
    assert!(matches!(effects[0], Effect::Offered { assigned: true, .. }));
    let effects = bench.apply(
        Command::Move {
            item: item_id(1),
            queue: "any".into(),
        },
        2,
    );
    assert!(matches!(
        effects[0],
        Effect::OfferEnded {
            reason: OfferEndReason::Rescinded,
            ..
        }
    ));
    let view = bench.engine.item(&item_id(1)).expect("item 1 is open");
    assert_eq!((view.queue.as_str(), view.arrived_at), ("any", at(0)));
    assert!(
        bench
            .engine
            .agent(&"ann".into())
            .is_some_and(|ann| ann.offers.is_empty())
    );
    bench.apply(Command::Cancel(item_id(1)), 3);
    assert!(bench.engine.items().next().is_none());
}

#[test]
fn queue_change_keeps_places_and_applies_new_steps() {
    let mut bench = Bench::new(vec![strategy_queue(SelectionStrategy::LongestIdle)]);
    bench.ready(agent("ann", &["sales"], &[]), 0);
    bench.submit(new_item(1, "sales", Channel::Voice, 0, 0), 0);
    bench.submit(new_item(2, "sales", Channel::Voice, 0, 1), 1);
    let effects = bench.apply(Command::UpsertQueue(Queue::new("sales".into())), 2);
    assert_eq!(offers(&effects), offered(1, "ann"));
}

#[test]
fn a_rejected_command_changes_nothing() {
    let mut bench = Bench::new(vec![Queue::new("sales".into())]);
    bench.ready(agent("ann", &["sales"], &[]), 0);
    bench.ready(agent("bob", &["other"], &[]), 0);
    bench.submit(new_item(1, "sales", Channel::Voice, 0, 0), 0);
    let before: Vec<ItemView> = bench.engine.items().collect();
    let refused = bench.engine.apply(
        Command::Accept {
            item: item_id(1),
            agent: "bob".into(),
        },
        at(1),
    );
    assert!(matches!(refused, Err(Error::FailedPrecondition(_))));
    let duplicate = bench.engine.apply(
        Command::Submit(new_item(1, "sales", Channel::Voice, 0, 0)),
        at(1),
    );
    assert!(matches!(duplicate, Err(Error::AlreadyExists { .. })));
    assert_eq!(bench.engine.items().collect::<Vec<_>>(), before);
}

#[test]
fn sign_out_returns_offers_to_their_place() {
    let mut bench = Bench::new(vec![Queue::new("sales".into())]);
    bench.ready(agent("ann", &["sales"], &[]), 0);
    bench.submit(new_item(1, "sales", Channel::Voice, 0, 0), 0);
    bench.submit(new_item(2, "sales", Channel::Voice, 0, 1), 1);
    bench.apply(Command::SignOut("ann".into()), 2);
    let effects = bench.ready(agent("bob", &["sales"], &[]), 3);
    assert_eq!(offers(&effects), offered(1, "bob"));
}

/// The routing state an agent shows now.
fn state_of(bench: &Bench, id: &str) -> RoutingState {
    bench
        .engine
        .agent(&AgentId::new(id))
        .expect("agent is configured")
        .state
}

/// The item's place in line.
fn place(bench: &Bench, n: u128) -> u32 {
    bench
        .engine
        .item_wait(&item_id(n))
        .expect("item is open")
        .position
}

#[test]
fn a_queue_is_removed_only_once_nothing_waits_or_alerts_in_it() {
    let mut bench = Bench::new(vec![Queue::new("sales".into())]);
    bench.submit(new_item(1, "sales", Channel::Voice, 0, 0), 0);
    let refused = bench
        .engine
        .apply(Command::RemoveQueue("sales".into()), at(1));
    assert!(
        matches!(refused, Err(Error::FailedPrecondition(_))),
        "an item waits"
    );
    let effects = bench.ready(agent("ann", &["sales"], &[]), 2);
    assert_eq!(offers(&effects), offered(1, "ann"));
    let refused = bench
        .engine
        .apply(Command::RemoveQueue("sales".into()), at(3));
    assert!(
        matches!(refused, Err(Error::FailedPrecondition(_))),
        "an item alerts"
    );
    bench.apply(
        Command::Accept {
            item: item_id(1),
            agent: "ann".into(),
        },
        4,
    );
    bench.apply(Command::RemoveQueue("sales".into()), 5);
    let late = bench.engine.apply(
        Command::Submit(new_item(2, "sales", Channel::Voice, 0, 6)),
        at(6),
    );
    assert!(matches!(late, Err(Error::NotFound { what: "queue", .. })));
    // The connected item finishes normally in the removed queue.
    let effects = bench.apply(Command::End(item_id(1)), 7);
    assert!(matches!(
        &effects[0],
        Effect::Completed { item, queue, .. } if *item == item_id(1) && queue.as_str() == "sales"
    ));
}

#[test]
fn an_agent_is_removed_only_when_connected_to_nothing_and_offers_go_back() {
    let mut bench = Bench::new(vec![Queue::new("sales".into())]);
    bench.ready(agent("ann", &["sales"], &[]), 0);
    bench.submit(new_item(1, "sales", Channel::Voice, 0, 0), 0);
    bench.apply(
        Command::Accept {
            item: item_id(1),
            agent: "ann".into(),
        },
        1,
    );
    let refused = bench
        .engine
        .apply(Command::RemoveAgent("ann".into()), at(2));
    assert!(matches!(refused, Err(Error::FailedPrecondition(_))));
    bench.ready(agent("bob", &["sales"], &[]), 3);
    let effects = bench.submit(new_item(2, "sales", Channel::Voice, 0, 4), 4);
    assert_eq!(offers(&effects), offered(2, "bob"));
    let effects = bench.apply(Command::RemoveAgent("bob".into()), 5);
    assert!(effects.contains(&Effect::OfferEnded {
        item: item_id(2),
        agent: "bob".into(),
        reason: OfferEndReason::Rescinded,
    }));
    assert!(effects.contains(&Effect::AgentState {
        agent: "bob".into(),
        state: RoutingState::LoggedOut,
        at: at(5),
    }));
    assert!(bench.engine.agent(&"bob".into()).is_none());
    assert_eq!(bench.engine.agents().count(), 1);
    assert_eq!(
        place(&bench, 2),
        1,
        "the item is back at the head of the line"
    );
    let gone = bench.engine.apply(Command::SetReady("bob".into()), at(6));
    assert!(matches!(gone, Err(Error::NotFound { what: "agent", .. })));
    // Ann's call ends; she takes the item Bob left.
    let effects = bench.apply(Command::End(item_id(1)), 7);
    assert_eq!(offers(&effects), offered(2, "ann"));
}

#[test]
fn a_supervisor_forces_each_state_an_agent_can_be_put_in() {
    let mut bench = Bench::new(vec![Queue::new("sales".into())]);
    let ann = AgentId::new("ann");
    bench.apply(Command::UpsertAgent(agent("ann", &["sales"], &[])), 0);
    bench.apply(
        Command::SetPresence {
            agent: ann.clone(),
            presence: Presence::Available,
        },
        0,
    );
    bench.submit(new_item(1, "sales", Channel::Voice, 0, 0), 0);
    let force = |bench: &mut Bench, state: RoutingState, secs: i64| {
        bench.apply(
            Command::ForceState {
                agent: ann.clone(),
                state,
            },
            secs,
        )
    };
    // Ready signs a signed-out agent in, and routing offers the waiting item.
    let effects = force(&mut bench, RoutingState::Ready, 1);
    assert_eq!(offers(&effects), offered(1, "ann"));
    assert!(bench.engine.agent(&ann).is_some_and(|view| view.signed_in));
    // Logged out rescinds the offer and signs the agent out.
    let effects = force(&mut bench, RoutingState::LoggedOut, 2);
    assert!(effects.contains(&Effect::OfferEnded {
        item: item_id(1),
        agent: ann.clone(),
        reason: OfferEndReason::Rescinded,
    }));
    assert_eq!(state_of(&bench, "ann"), RoutingState::LoggedOut);
    assert!(bench.engine.agent(&ann).is_some_and(|view| !view.signed_in));
    // Not ready signs the agent in without offering anything.
    let coaching = RoutingState::NotReady {
        reason: "coaching".to_owned(),
    };
    let effects = force(&mut bench, coaching.clone(), 3);
    assert!(offers(&effects).is_empty());
    assert_eq!(state_of(&bench, "ann"), coaching);
    assert!(bench.engine.agent(&ann).is_some_and(|view| view.signed_in));
    // Not responding also keeps work away, until the agent sets themselves ready.
    let effects = force(&mut bench, RoutingState::NotResponding, 4);
    assert!(offers(&effects).is_empty());
    assert_eq!(state_of(&bench, "ann"), RoutingState::NotResponding);
    let effects = bench.apply(Command::SetReady(ann.clone()), 5);
    assert_eq!(offers(&effects), offered(1, "ann"));
    // Activity states cannot be forced.
    let refused = bench.engine.apply(
        Command::ForceState {
            agent: ann.clone(),
            state: RoutingState::Busy,
        },
        at(6),
    );
    assert!(matches!(refused, Err(Error::InvalidArgument { .. })));
}

#[test]
fn reprioritising_a_waiting_item_moves_it_in_line() {
    let mut bench = Bench::new(vec![Queue::new("sales".into())]);
    for n in 1..=3 {
        bench.submit(new_item(n, "sales", Channel::Voice, 0, n as i64), n as i64);
    }
    assert_eq!([place(&bench, 1), place(&bench, 3)], [1, 3]);
    let effects = bench.apply(
        Command::Reprioritise {
            item: item_id(3),
            priority: 2,
        },
        4,
    );
    assert_eq!(
        effects,
        vec![Effect::Reprioritised {
            item: item_id(3),
            queue: "sales".into(),
            priority: 2,
        }]
    );
    bench.apply(
        Command::Reprioritise {
            item: item_id(1),
            priority: -1,
        },
        5,
    );
    assert_eq!(
        [place(&bench, 3), place(&bench, 2), place(&bench, 1)],
        [1, 2, 3]
    );
    let view = bench.engine.item(&item_id(3)).expect("item 3 is open");
    assert_eq!((view.priority, view.enqueued_at), (2, at(3)));
    let effects = bench.ready(agent("ann", &["sales"], &[]), 6);
    assert_eq!(offers(&effects), offered(3, "ann"));
}

#[test]
fn signing_in_not_ready_gets_no_offers_until_ready() {
    let mut bench = Bench::new(vec![Queue::new("sales".into())]);
    bench.submit(new_item(1, "sales", Channel::Voice, 0, 0), 0);
    bench.apply(Command::UpsertAgent(agent("ann", &["sales"], &[])), 1);
    bench.apply(
        Command::SetPresence {
            agent: "ann".into(),
            presence: Presence::Available,
        },
        1,
    );
    let effects = bench.apply(
        Command::SignIn {
            agent: "ann".into(),
            ready: false,
        },
        2,
    );
    let signed_in = RoutingState::NotReady {
        reason: "signed_in".to_owned(),
    };
    assert_eq!(
        effects,
        vec![Effect::AgentState {
            agent: "ann".into(),
            state: signed_in.clone(),
            at: at(2),
        }]
    );
    assert_eq!(state_of(&bench, "ann"), signed_in);
    let effects = bench.submit(new_item(2, "sales", Channel::Voice, 0, 3), 3);
    assert!(offers(&effects).is_empty());
    let effects = bench.apply(Command::SetReady("ann".into()), 4);
    assert_eq!(offers(&effects), offered(1, "ann"));
}

#[test]
fn wrap_up_ended_names_the_item_wrapped_up() {
    let mut bench = wrapping_bench(30);
    bench.accept_and_end(1, "ann", 10);
    let effects = bench.engine.tick(at(40));
    assert!(effects.contains(&Effect::WrapUpEnded {
        item: item_id(1),
        agent: "ann".into(),
        queue: "sales".into(),
        channel: Channel::Voice,
        early: false,
    }));
    bench.submit(new_item(8, "sales", Channel::Voice, 0, 41), 41);
    bench.accept_and_end(8, "ann", 50);
    let effects = bench.apply(Command::FinishWrapUp("ann".into()), 55);
    assert!(effects.contains(&Effect::WrapUpEnded {
        item: item_id(8),
        agent: "ann".into(),
        queue: "sales".into(),
        channel: Channel::Voice,
        early: true,
    }));
}

/// A queue that sends items nobody could take to `target`, staffed by two
/// busy agents, with item 3 waiting for one of them.
fn busy_queue_with_no_agents_rule(target: Disposition) -> Bench {
    let mut help = Queue::new("help".into());
    help.limits.when_no_agents = Some(target);
    let mut bench = Bench::new(vec![help, Queue::new("backup".into())]);
    bench.ready(agent("ann", &["help"], &[]), 0);
    bench.ready(agent("bob", &["help"], &[]), 0);
    for (n, name) in [(1, "ann"), (2, "bob")] {
        bench.submit(new_item(n, "help", Channel::Voice, 0, 0), 0);
        bench.apply(
            Command::Accept {
                item: item_id(n),
                agent: name.into(),
            },
            0,
        );
    }
    let effects = bench.submit(new_item(3, "help", Channel::Voice, 0, 1), 1);
    assert!(matches!(effects[0], Effect::Queued { .. }));
    bench
}

#[test]
fn when_the_last_agent_signs_out_waiting_items_get_the_no_agents_disposition() {
    let mut bench = busy_queue_with_no_agents_rule(Disposition::Voicemail);
    let effects = bench.apply(Command::SignOut("ann".into()), 2);
    assert!(
        bench.engine.item(&item_id(3)).is_some(),
        "Bob is still signed in: {effects:?}"
    );
    let effects = bench.apply(Command::SignOut("bob".into()), 3);
    assert!(effects.contains(&Effect::Disposed {
        item: item_id(3),
        queue: "help".into(),
        channel: Channel::Voice,
        disposition: Disposition::Voicemail,
        reason: LimitReason::NoAgents,
        waited: std::time::Duration::from_secs(2),
    }));
    assert!(bench.engine.item(&item_id(3)).is_none());
    // Connected items stay with the agents who signed out.
    assert!(bench.engine.item(&item_id(1)).is_some());
}

#[test]
fn removing_or_reassigning_the_last_agent_also_applies_no_agents() {
    let overflow = Disposition::Overflow {
        queue: "backup".into(),
    };
    let mut bench = busy_queue_with_no_agents_rule(overflow);
    // Ann leaves the queue by reconfiguration, Bob ends his call and is removed.
    bench.apply(Command::UpsertAgent(agent("ann", &["backup"], &[])), 2);
    assert!(bench.engine.item(&item_id(3)).is_some());
    bench.apply(Command::End(item_id(2)), 3);
    let effects = bench.apply(Command::RemoveAgent("bob".into()), 4);
    assert!(effects.contains(&Effect::Overflowed {
        item: item_id(3),
        from: "help".into(),
        to: "backup".into(),
        channel: Channel::Voice,
        reason: LimitReason::NoAgents,
    }));
    let view = bench.engine.item(&item_id(3)).expect("item 3 is open");
    assert_eq!(view.queue.as_str(), "backup");
}

#[test]
fn an_agent_without_capacity_on_the_channel_does_not_keep_items_waiting() {
    let mut bench = busy_queue_with_no_agents_rule(Disposition::Callback);
    let mut chat_only = agent("cat", &["help"], &[]);
    chat_only.capacity = ChannelCapacity {
        voice: 0,
        chat: 2,
        video: 0,
    };
    bench.ready(chat_only, 2);
    bench.apply(Command::SignOut("ann".into()), 3);
    let effects = bench.apply(Command::SignOut("bob".into()), 4);
    assert!(effects.iter().any(|effect| matches!(
        effect,
        Effect::Disposed {
            item,
            reason: LimitReason::NoAgents,
            ..
        } if *item == item_id(3)
    )));
}

#[test]
fn places_in_line_count_every_class_from_the_nearer_end() {
    let mut queue = two_step_queue();
    queue.steps[1].match_language = false;
    let mut bench = Bench::new(vec![queue]);
    // Items 1-4 are in step 0's class, items 5-6 (older) already in step 1's.
    for n in 5..=6 {
        bench.submit(new_item(n, "billing", Channel::Voice, 0, 0), 40);
    }
    for n in 1..=4 {
        bench.submit(new_item(n, "billing", Channel::Voice, 0, 30 + n as i64), 40);
    }
    let mut urgent = new_item(9, "billing", Channel::Voice, 3, 40);
    urgent.skills = vec![requirement("vip", 1)];
    let effects = bench.submit(urgent, 40);
    assert!(matches!(effects[0], Effect::Queued { position: 1, .. }));
    let places: Vec<u32> = [5, 6, 1, 2, 3, 4]
        .iter()
        .map(|n| place(&bench, *n))
        .collect();
    assert_eq!(places, [2, 3, 4, 5, 6, 7]);
}

#[test]
fn a_duration_on_the_last_step_is_ignored() {
    let mut queue = two_step_queue();
    queue.steps[1].duration_secs = Some(10);
    let mut bench = Bench::new(vec![queue]);
    bench.submit(new_item(1, "billing", Channel::Voice, 0, 0), 0);
    assert_eq!(bench.engine.next_deadline(), Some(at(30)));
    bench.engine.tick(at(30));
    // The last step lasts for ever: no timer for its end (which used to re-arm itself at once).
    assert_eq!(bench.engine.next_deadline(), None);
    bench.engine.tick(at(60));
    let view = bench.engine.item(&item_id(1)).expect("item 1 waits");
    assert_eq!(view.status, ItemStatus::Waiting { step: 1 });
}

#[test]
fn a_requeued_item_waits_where_a_new_one_would_be_turned_away() {
    let mut staffed = Queue::new("staffed".into());
    staffed.limits.when_no_agents = Some(Disposition::Callback);
    staffed.limits.max_waiting = Some(1);
    let mut bench = Bench::new(vec![staffed]);
    let effects = bench.submit(new_item(1, "staffed", Channel::Voice, 0, 0), 10);
    assert!(
        matches!(
            effects[0],
            Effect::Disposed {
                reason: LimitReason::NoAgents,
                ..
            }
        ),
        "a new caller with nobody to take them is offered a callback: {effects:?}"
    );
    // After a restart every agent is signed out; the callers who were
    // waiting keep their places all the same, however many there are.
    for n in 2..=3 {
        let effects = bench.apply(
            Command::Requeue(new_item(n, "staffed", Channel::Voice, 0, 0)),
            20,
        );
        assert!(
            matches!(effects[0], Effect::Queued { .. }),
            "waiting caller {n} is back in line: {effects:?}"
        );
    }
    let view = bench.engine.item(&item_id(3)).expect("caller 3 is held");
    assert!(matches!(view.status, ItemStatus::Waiting { .. }));
}

#[test]
fn a_restored_call_holds_its_agents_capacity_until_it_ends() {
    let mut queue = Queue::new("sales".into());
    queue.wrap_up_secs = 30;
    let mut bench = Bench::new(vec![queue]);
    bench.apply(Command::UpsertAgent(agent("ann", &["sales"], &[])), 0);
    bench.apply(
        Command::Restore {
            item: new_item(1, "sales", Channel::Voice, 0, 0),
            agent: "ann".into(),
            since: at(5),
        },
        100,
    );
    let ann = bench.engine.agent(&"ann".into()).expect("ann exists");
    assert_eq!(ann.state, RoutingState::LoggedOut);
    bench.ready(agent("ann", &["sales"], &[]), 110);
    let effects = bench.submit(new_item(2, "sales", Channel::Voice, 0, 120), 120);
    assert!(
        offers(&effects).is_empty(),
        "ann is still on the restored call"
    );
    let effects = bench.apply(Command::End(item_id(1)), 200);
    let completed = effects.iter().find_map(|effect| match effect {
        Effect::Completed {
            item,
            handle_time,
            wrap_up_until,
            ..
        } => Some((*item, handle_time.as_secs(), *wrap_up_until)),
        _ => None,
    });
    assert_eq!(completed, Some((item_id(1), 195, Some(at(230)))));
    assert_eq!(offers(&bench.engine.tick(at(230))), offered(2, "ann"));
}

#[test]
fn a_restore_names_an_agent_the_engine_knows() {
    let mut bench = Bench::new(vec![Queue::new("sales".into())]);
    let restored = bench.engine.apply(
        Command::Restore {
            item: new_item(1, "sales", Channel::Voice, 0, 0),
            agent: "nobody".into(),
            since: at(5),
        },
        at(10),
    );
    assert!(matches!(restored, Err(Error::NotFound { .. })));
    assert!(bench.engine.item(&item_id(1)).is_none());
}
