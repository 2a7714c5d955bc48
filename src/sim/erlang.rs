//! Queueing theory for staffing and for checking the engine: Erlang C
//! (M/M/N) in closed form, and Erlang A (M/M/N+M, exponential patience) from
//! its birth–death chain and the fate of a tagged caller in line.
//!
//! Both use the formulas of DESIGN.md, "Queueing theory as the oracle". The
//! service level is the default definition: answered within T over answered
//! plus abandoned after T (with no abandons, the share answered within T).

use serde::Serialize;

/// The traffic and staffing one prediction is made for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Staffing {
    /// Arrivals per second.
    pub arrival_rate: f64,
    /// Mean handle time in seconds (talk plus wrap-up).
    pub aht: f64,
    /// Agents, each taking one item at a time.
    pub agents: u32,
    /// Service-level threshold T in seconds.
    pub threshold: f64,
    /// Mean patience in seconds; `None` means callers never abandon (Erlang C).
    pub patience: Option<f64>,
}

/// What queueing theory predicts for one [`Staffing`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Prediction {
    /// Offered load A = λ·AHT, in Erlang.
    pub load: f64,
    /// Share of arrivals that find every agent busy and wait.
    pub p_wait: f64,
    /// Service level: answered within T over answered plus abandoned after T.
    pub service_level: f64,
    /// Average speed of answer: the mean wait of answered items, seconds.
    pub asa: f64,
    /// Share of agents' time spent handling.
    pub occupancy: f64,
    /// Share of arrivals that abandon (zero without patience).
    pub p_abandon: f64,
}

/// Why no prediction can be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ErlangError {
    /// An input is out of range.
    #[error("{field}: {reason}")]
    Invalid {
        /// The input at fault.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// Without abandonment the queue grows for ever when A ≥ N.
    #[error(
        "agents: {agents} agents cannot carry {load:.3} Erlang without abandonment; the queue grows without bound"
    )]
    Unstable {
        /// The agents given.
        agents: u32,
        /// The offered load.
        load: f64,
    },
}

/// Erlang B, the blocking probability of N servers offered A Erlang, by the
/// stable recursion B(n) = A·B(n−1) / (n + A·B(n−1)).
pub fn erlang_b(agents: u32, load: f64) -> f64 {
    let mut b = 1.0;
    for n in 1..=agents {
        b = load * b / (f64::from(n) + load * b);
    }
    b
}

/// Erlang C: the probability of waiting, C(N, A) = N·B / (N − A·(1 − B)).
pub fn erlang_c(agents: u32, load: f64) -> f64 {
    let b = erlang_b(agents, load);
    let n = f64::from(agents);
    n * b / (n - load * (1.0 - b))
}

impl Staffing {
    /// Checks the inputs, naming the one at fault.
    fn check(&self) -> Result<(), ErlangError> {
        let invalid = |field, reason: &str| {
            Err(ErlangError::Invalid {
                field,
                reason: reason.to_owned(),
            })
        };
        if !(self.arrival_rate.is_finite() && self.arrival_rate > 0.0) {
            return invalid("arrival_rate", "must be a positive number");
        }
        if !(self.aht.is_finite() && self.aht > 0.0) {
            return invalid("aht", "must be a positive number of seconds");
        }
        if self.agents == 0 {
            return invalid("agents", "must be at least 1");
        }
        if !(self.threshold.is_finite() && self.threshold >= 0.0) {
            return invalid("target", "must be zero or more seconds");
        }
        if let Some(patience) = self.patience
            && !(patience.is_finite() && patience > 0.0)
        {
            return invalid("patience", "must be a positive number of seconds");
        }
        Ok(())
    }

    /// The prediction: Erlang C without patience, Erlang A with it.
    pub fn predict(&self) -> Result<Prediction, ErlangError> {
        self.check()?;
        match self.patience {
            None => self.erlang_c(),
            Some(patience) => Ok(self.erlang_a(1.0 / patience)),
        }
    }

    /// M/M/N in closed form.
    fn erlang_c(&self) -> Result<Prediction, ErlangError> {
        let load = self.arrival_rate * self.aht;
        let n = f64::from(self.agents);
        if load >= n {
            return Err(ErlangError::Unstable {
                agents: self.agents,
                load,
            });
        }
        let p_wait = erlang_c(self.agents, load);
        Ok(Prediction {
            load,
            p_wait,
            service_level: 1.0 - p_wait * (-(n - load) * self.threshold / self.aht).exp(),
            asa: p_wait * self.aht / (n - load),
            occupancy: load / n,
            p_abandon: 0.0,
        })
    }

    /// M/M/N+M. The stationary law π of the number in system comes from the
    /// birth–death chain (rates λ up; n·μ, then N·μ + (n − N)·θ down). An
    /// arrival that finds n ≥ N joins line at place k = n − N + 1; from place
    /// j it moves up at rate N·μ + (j − 1)·θ and abandons at rate θ, so its
    /// fate within T follows from integrating that pure-death chain.
    fn erlang_a(&self, theta: f64) -> Prediction {
        let lambda = self.arrival_rate;
        let mu = 1.0 / self.aht;
        let agents = self.agents as usize;
        let n_mu = f64::from(self.agents) * mu;
        // Unnormalised π, until it is negligible well past the agents.
        let mut pi = vec![1.0_f64];
        let mut total = 1.0;
        loop {
            let n = pi.len();
            let down = if n <= agents {
                n as f64 * mu
            } else {
                n_mu + (n - agents) as f64 * theta
            };
            let next = pi[n - 1] * lambda / down;
            pi.push(next);
            total += next;
            if n > agents && next < total * 1e-17 {
                break;
            }
        }
        for p in &mut pi {
            *p /= total;
        }
        let queued = &pi[agents..];
        let p_wait: f64 = queued.iter().sum();
        let mut mean_queue = 0.0;
        let mut served = 1.0 - p_wait;
        let mut served_wait = 0.0;
        let mut ahead_wait = 0.0;
        for (offset, p) in queued.iter().enumerate() {
            let place = (offset + 1) as f64;
            mean_queue += offset as f64 * p;
            // The mean wait of a caller served from this place.
            ahead_wait += 1.0 / (n_mu + place * theta);
            let p_served = n_mu / (n_mu + place * theta);
            served += p * p_served;
            served_wait += p * p_served * ahead_wait;
        }
        let p_abandon = theta * mean_queue / lambda;
        let (answered_within, abandoned_within) = self.fates_within(queued, n_mu, theta);
        let answered_now = 1.0 - p_wait;
        Prediction {
            load: lambda * self.aht,
            p_wait,
            service_level: (answered_now + answered_within) / (1.0 - abandoned_within),
            asa: served_wait / served,
            occupancy: lambda * (1.0 - p_abandon) * self.aht / f64::from(self.agents),
            p_abandon,
        }
    }

    /// The shares of arrivals answered after waiting, and abandoned, within
    /// T: the pure-death chain of a caller's place in line, started from the
    /// law of the place it joins at, integrated by fourth-order Runge–Kutta.
    fn fates_within(&self, joining: &[f64], n_mu: f64, theta: f64) -> (f64, f64) {
        let places = joining.len();
        let fastest = n_mu + places as f64 * theta;
        let steps = ((self.threshold * fastest / 0.01).ceil() as usize).max(1);
        let dt = self.threshold / steps as f64;
        // state[0] = answered, state[1] = abandoned, state[1 + k] = at place k.
        let mut state = vec![0.0; places + 2];
        state[2..].copy_from_slice(joining);
        let rates = |state: &[f64], out: &mut [f64]| {
            out.fill(0.0);
            for k in 1..=places {
                let mass = state[1 + k];
                let up = n_mu + (k - 1) as f64 * theta;
                out[1 + k] -= mass * (up + theta);
                out[1] += mass * theta;
                if k == 1 {
                    out[0] += mass * up;
                } else {
                    out[k] += mass * up;
                }
            }
        };
        let size = state.len();
        let (mut k1, mut k2, mut k3, mut k4) = (
            vec![0.0; size],
            vec![0.0; size],
            vec![0.0; size],
            vec![0.0; size],
        );
        let mut probe = vec![0.0; size];
        for _ in 0..steps {
            rates(&state, &mut k1);
            for i in 0..size {
                probe[i] = state[i] + 0.5 * dt * k1[i];
            }
            rates(&probe, &mut k2);
            for i in 0..size {
                probe[i] = state[i] + 0.5 * dt * k2[i];
            }
            rates(&probe, &mut k3);
            for i in 0..size {
                probe[i] = state[i] + dt * k3[i];
            }
            rates(&probe, &mut k4);
            for i in 0..size {
                state[i] += dt / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i]);
            }
        }
        (state[0], state[1])
    }

    /// The fewest agents whose service level reaches `target`, searching up
    /// from the least that can carry the load (from one agent with patience).
    pub fn agents_for(&self, target: f64) -> Result<u32, ErlangError> {
        if !(target > 0.0 && target < 1.0) {
            return Err(ErlangError::Invalid {
                field: "target_sl",
                reason: format!("must be between 0 and 1 exclusive, got {target}"),
            });
        }
        let mut trial = Staffing { agents: 1, ..*self };
        trial.check()?;
        if self.patience.is_none() {
            // The least N above A.
            let load = self.arrival_rate * self.aht;
            trial.agents = (load.floor() as u32).saturating_add(1);
        }
        loop {
            if trial.predict()?.service_level >= target {
                return Ok(trial.agents);
            }
            trial.agents += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The setup: 100 calls per 30 minutes, 180 s handle, T = 20 s.
    fn setup(agents: u32, patience: Option<f64>) -> Staffing {
        Staffing {
            arrival_rate: 100.0 / 1800.0,
            aht: 180.0,
            agents,
            threshold: 20.0,
            patience,
        }
    }

    /// Equal to 6 significant digits.
    fn close(measured: f64, exact: f64) -> bool {
        ((measured - exact) / exact).abs() < 5e-6
    }

    #[test]
    fn erlang_c_matches_the_published_values() {
        let table = [
            (11, 0.6821182, 0.3896138, 122.78),
            (12, 0.4493882, 0.640158, 40.445),
            (13, 0.2852705, 0.7955948, 17.116),
            (14, 0.1741319, 0.88835, 7.836),
        ];
        for (agents, p_wait, service_level, asa) in table {
            let predicted = setup(agents, None).predict().unwrap();
            assert!(close(predicted.p_wait, p_wait), "{agents}: {predicted:?}");
            assert!(
                close(predicted.service_level, service_level),
                "{agents}: {predicted:?}"
            );
            // The table gives ASA to 5 significant digits (4 for N = 14).
            assert!(
                ((predicted.asa - asa) / asa).abs() < 5e-5,
                "{agents}: {predicted:?}"
            );
            assert!((predicted.occupancy - 10.0 / f64::from(agents)).abs() < 1e-12);
            assert!((predicted.load - 10.0).abs() < 1e-12);
        }
    }

    #[test]
    fn fourteen_agents_reach_eighty_percent_in_twenty_seconds() {
        assert_eq!(setup(1, None).agents_for(0.8), Ok(14));
        assert_eq!(setup(1, None).agents_for(0.64), Ok(12));
    }

    #[test]
    fn erlang_a_tends_to_erlang_c_as_patience_grows() {
        for agents in [11, 14] {
            let c = setup(agents, None).predict().unwrap();
            let a = setup(agents, Some(1e9)).predict().unwrap();
            assert!((a.p_wait - c.p_wait).abs() < 1e-4, "{a:?} {c:?}");
            assert!(
                (a.service_level - c.service_level).abs() < 1e-4,
                "{a:?} {c:?}"
            );
            assert!((a.asa - c.asa).abs() / c.asa < 1e-3, "{a:?} {c:?}");
            assert!(a.p_abandon < 1e-5, "{a:?}");
        }
    }

    #[test]
    fn erlang_a_balances_its_flows() {
        // Little's law on the line: abandons = θ·E[queue], and the answered
        // share carries the occupancy.
        let a = setup(10, Some(300.0)).predict().unwrap();
        assert!(a.p_abandon > 0.01 && a.p_abandon < 0.2, "{a:?}");
        assert!(a.p_wait > a.p_abandon && a.p_wait < 1.0, "{a:?}");
        let carried = (1.0 - a.p_abandon) * 10.0 / 10.0;
        assert!((a.occupancy - carried).abs() < 1e-12, "{a:?}");
        // Fewer agents than the load is fine with abandonment.
        let overloaded = setup(8, Some(300.0)).predict().unwrap();
        assert!(overloaded.p_abandon > a.p_abandon);
    }

    #[test]
    fn bad_inputs_name_their_field() {
        let error = setup(10, None).predict().unwrap_err();
        assert!(
            error.to_string().starts_with("agents: 10 agents"),
            "{error}"
        );
        let error = Staffing {
            aht: 0.0,
            ..setup(12, None)
        }
        .predict()
        .unwrap_err();
        assert!(error.to_string().starts_with("aht: "), "{error}");
        let error = setup(12, None).agents_for(1.2).unwrap_err();
        assert!(error.to_string().starts_with("target_sl: "), "{error}");
    }
}
