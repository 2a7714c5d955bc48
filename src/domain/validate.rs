//! Validation of configuration that needs no database: names, levels,
//! addresses, the shape of routing steps. Each error names the field at fault.
//! References to other objects (a step's skill, an agent's queue) are checked
//! by the store inside the transaction that writes them.

use super::{
    Agent, Channel, Disposition, EntryPoint, MAX_SL_THRESHOLD_SECS, Queue, Skill, SkillRequirement,
};
use crate::error::{Error, Result};
use std::collections::HashSet;

/// The longest name Switchboard accepts for a skill, queue or agent id.
const MAX_NAME_LEN: usize = 128;

/// The largest per-channel capacity an agent may be given.
const MAX_CAPACITY: u32 = 100;

/// Checks a configuration object before it is stored.
pub trait Validate {
    /// Returns the first problem found, naming its field.
    fn validate(&self) -> Result<()>;
}

/// Checks an identifier: non-empty, at most 128 characters, no whitespace or
/// control characters.
pub fn check_name(field: &str, name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    if name.chars().count() > MAX_NAME_LEN {
        return Err(Error::invalid(
            field,
            format!("must be at most {MAX_NAME_LEN} characters"),
        ));
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::invalid(
            field,
            "must not contain whitespace or control characters",
        ));
    }
    Ok(())
}

/// True for a UC address Switchboard can hand to the bridge: a `sip:` or
/// `sips:` URI with a user and a host (`sip:alice@contoso.example`), or a
/// `tel:` URI with digits (`tel:+14255550100`).
pub fn is_address(address: &str) -> bool {
    if address.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    if let Some(number) = address.strip_prefix("tel:") {
        let digits = number.strip_prefix('+').unwrap_or(number);
        return !digits.is_empty()
            && digits
                .chars()
                .all(|c| c.is_ascii_digit() || c == '-' || c == '.');
    }
    let Some(rest) = address
        .strip_prefix("sip:")
        .or_else(|| address.strip_prefix("sips:"))
    else {
        return false;
    };
    match rest.split_once('@') {
        Some((user, host)) => !user.is_empty() && !host.is_empty() && !host.contains('@'),
        None => false,
    }
}

/// Checks an address field with [`is_address`].
pub fn check_address(field: &str, address: &str) -> Result<()> {
    if address.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    if !is_address(address) {
        return Err(Error::invalid(
            field,
            "must be a sip:user@host, sips:user@host or tel:+digits address",
        ));
    }
    Ok(())
}

/// Checks a proficiency is within 1–5.
pub fn check_level(field: &str, level: u8) -> Result<()> {
    if !(1..=5).contains(&level) {
        return Err(Error::invalid(
            field,
            format!("proficiency must be between 1 and 5, got {level}"),
        ));
    }
    Ok(())
}

/// Checks a list of skill requirements: valid names and levels, no skill twice.
pub fn check_requirements(field: &str, requirements: &[SkillRequirement]) -> Result<()> {
    let mut seen = HashSet::new();
    for (i, requirement) in requirements.iter().enumerate() {
        check_name(&format!("{field}[{i}].skill"), requirement.skill.as_str())?;
        check_level(&format!("{field}[{i}].min_level"), requirement.min_level)?;
        if !seen.insert(&requirement.skill) {
            return Err(Error::invalid(
                format!("{field}[{i}].skill"),
                format!("skill {} is listed twice", requirement.skill),
            ));
        }
    }
    Ok(())
}

impl Validate for Skill {
    fn validate(&self) -> Result<()> {
        check_name("name", self.name.as_str())
    }
}

impl Validate for Queue {
    fn validate(&self) -> Result<()> {
        check_name("id", self.id.as_str())?;
        if self.steps.is_empty() {
            return Err(Error::invalid("steps", "a queue needs at least one step"));
        }
        let last = self.steps.len() - 1;
        for (i, step) in self.steps.iter().enumerate() {
            check_requirements(&format!("steps[{i}].requirements"), &step.requirements)?;
            match step.duration_secs {
                None if i != last => {
                    return Err(Error::invalid(
                        format!("steps[{i}].duration_secs"),
                        "only the last step may last for ever",
                    ));
                }
                Some(0) => {
                    return Err(Error::invalid(
                        format!("steps[{i}].duration_secs"),
                        "must be positive",
                    ));
                }
                _ => {}
            }
        }
        if !(self.sl_target > 0.0 && self.sl_target <= 1.0) {
            return Err(Error::invalid(
                "sl_target",
                "must be a fraction above 0 and at most 1",
            ));
        }
        for channel in Channel::ALL {
            let threshold = self.sl_thresholds.get(channel);
            if threshold > MAX_SL_THRESHOLD_SECS {
                return Err(Error::invalid(
                    format!("sl_thresholds.{}", channel.as_str()),
                    format!(
                        "must be at most {MAX_SL_THRESHOLD_SECS} seconds (a day), got {threshold}"
                    ),
                ));
            }
        }
        if self.offer_timeout_secs == 0 {
            return Err(Error::invalid("offer_timeout_secs", "must be positive"));
        }
        if self.max_no_answer == 0 {
            return Err(Error::invalid("max_no_answer", "must be positive"));
        }
        if self.priority_aging_secs == Some(0) {
            return Err(Error::invalid("priority_aging_secs", "must be positive"));
        }
        if self.limits.max_wait_secs == Some(0) {
            return Err(Error::invalid("limits.max_wait_secs", "must be positive"));
        }
        let dispositions = [
            ("limits.when_full", &self.limits.when_full),
            ("limits.when_max_wait", &self.limits.when_max_wait),
            ("limits.when_no_agents", &self.limits.when_no_agents),
        ];
        for (field, disposition) in dispositions {
            if let Some(Disposition::Overflow { queue }) = disposition {
                if *queue == self.id {
                    return Err(Error::invalid(
                        format!("{field}.queue"),
                        "a queue cannot overflow to itself",
                    ));
                }
                check_name(&format!("{field}.queue"), queue.as_str())?;
            }
        }
        if self.limits.when_no_agents == Some(Disposition::Reject) {
            return Err(Error::invalid(
                "limits.when_no_agents",
                "reject applies only when the queue is full",
            ));
        }
        if self.limits.when_max_wait == Some(Disposition::Reject) {
            return Err(Error::invalid(
                "limits.when_max_wait",
                "reject applies only when the queue is full",
            ));
        }
        Ok(())
    }
}

impl Validate for EntryPoint {
    fn validate(&self) -> Result<()> {
        check_address("address", self.address.as_str())?;
        check_name("queue", self.queue.as_str())
    }
}

impl Validate for Agent {
    fn validate(&self) -> Result<()> {
        check_name("id", self.id.as_str())?;
        check_address("uc_address", &self.uc_address)?;
        let mut seen = HashSet::new();
        for (i, (skill, level)) in self.skills.iter().enumerate() {
            check_name(&format!("skills[{i}].skill"), skill.as_str())?;
            check_level(&format!("skills[{i}].level"), *level)?;
            if !seen.insert(skill) {
                return Err(Error::invalid(
                    format!("skills[{i}].skill"),
                    format!("skill {skill} is listed twice"),
                ));
            }
        }
        let capacities = [
            ("capacity.voice", self.capacity.voice),
            ("capacity.chat", self.capacity.chat),
            ("capacity.video", self.capacity.video),
        ];
        for (field, capacity) in capacities {
            if capacity > MAX_CAPACITY {
                return Err(Error::invalid(
                    field,
                    format!("must be at most {MAX_CAPACITY}"),
                ));
            }
        }
        let mut queues = HashSet::new();
        for (i, queue) in self.queues.iter().enumerate() {
            check_name(&format!("queues[{i}]"), queue.as_str())?;
            if !queues.insert(queue) {
                return Err(Error::invalid(
                    format!("queues[{i}]"),
                    format!("queue {queue} is listed twice"),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_need_a_scheme_a_user_and_a_host() {
        assert!(is_address("sip:sales@contoso.example"));
        assert!(is_address("sips:alice@contoso.example"));
        assert!(is_address("tel:+14255550100"));
        assert!(!is_address("sales@contoso.example"));
        assert!(!is_address("sip:contoso.example"));
        assert!(!is_address("sip:@contoso.example"));
        assert!(!is_address("sip:a b@contoso.example"));
        assert!(!is_address("tel:+"));
        assert!(!is_address("tel:call-me"));
    }

    #[test]
    fn only_the_last_step_may_last_for_ever() {
        let mut queue = Queue::new("sales".into());
        queue.steps.insert(0, queue.steps[0].clone());
        let err = queue.validate().unwrap_err();
        assert_eq!(
            err,
            Error::invalid(
                "steps[0].duration_secs",
                "only the last step may last for ever"
            )
        );
    }

    #[test]
    fn a_threshold_is_at_most_a_day() {
        let mut queue = Queue::new("sales".into());
        queue.sl_thresholds.chat = MAX_SL_THRESHOLD_SECS;
        assert!(queue.validate().is_ok());
        queue.sl_thresholds.chat = MAX_SL_THRESHOLD_SECS + 1;
        let err = queue.validate().unwrap_err();
        assert_eq!(
            err,
            Error::invalid(
                "sl_thresholds.chat",
                "must be at most 86400 seconds (a day), got 86401"
            )
        );
    }

    #[test]
    fn proficiency_is_one_to_five() {
        assert!(check_level("level", 0).is_err());
        assert!(check_level("level", 6).is_err());
        assert!(check_level("level", 1).is_ok());
        assert!(check_level("level", 5).is_ok());
    }
}
