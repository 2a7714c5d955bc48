//! Scenarios for the simulator's tests: one queue served by identical
//! agents, one Poisson voice stream with exponential handling, so that
//! Erlang C (or Erlang A, with patience) applies.

use switchboard::sim::scenario::Scenario;

/// The traffic and staffing of an M/M/N (or M/M/N+M) scenario.
pub struct Mmn {
    /// Agents, each serving only the queue.
    pub agents: u32,
    /// Arrivals per 30 minutes.
    pub calls_per_half_hour: u32,
    /// Mean handle time, seconds.
    pub handle_secs: u32,
    /// Mean patience, seconds; nobody abandons when `None`.
    pub patience_secs: Option<u32>,
    /// Simulated seconds of arrivals.
    pub duration_secs: u32,
    /// Seconds left uncounted at the start.
    pub warmup_secs: u32,
    /// Independent replications.
    pub replications: u32,
    /// The first replication's seed.
    pub seed: u64,
}

impl Mmn {
    /// The scenario, read through the same parser as a file.
    pub fn scenario(&self) -> Scenario {
        let patience = match self.patience_secs {
            Some(mean) => {
                format!("    patience: {{ distribution: exponential, mean_secs: {mean} }}\n")
            }
            None => String::new(),
        };
        let text = format!(
            "\
centre:
  queues:
    - id: support
  entry_points:
    - address: sip:support@contoso.example
      queue: support
staff:
  - agent: {{ id: agent, uc_address: sip:agent@contoso.example, queues: [support] }}
    count: {agents}
traffic:
  - entry_point: sip:support@contoso.example
    channel: voice
    calls_per_interval: [{calls}]
    handle: {{ distribution: exponential, mean_secs: {handle} }}
{patience}run:
  duration_secs: {duration}
  warmup_secs: {warmup}
  replications: {replications}
  seed: {seed}
",
            agents = self.agents,
            calls = self.calls_per_half_hour,
            handle = self.handle_secs,
            duration = self.duration_secs,
            warmup = self.warmup_secs,
            replications = self.replications,
            seed = self.seed,
        );
        Scenario::from_yaml(&text).expect("the test scenario is valid")
    }
}
