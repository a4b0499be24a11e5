//! Status conditions as every kubefim writer sets them: a condition keeps its transition time
//! while its status holds, so `kubectl get` shows since when something has been true.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// A condition, keeping the previous transition time when its status did not change.
pub fn condition(
    type_: &str,
    status: bool,
    reason: &str,
    message: String,
    previous: &[Condition],
    now: k8s_openapi::jiff::Timestamp,
) -> Condition {
    let status = if status { "True" } else { "False" }.to_string();
    let last_transition_time = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    Condition {
        type_: type_.into(),
        status,
        reason: reason.into(),
        message,
        last_transition_time,
        observed_generation: None,
    }
}

/// The condition of `type_` in `conditions`, if any.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_transition_time_holds_while_the_status_does() {
        let t0: k8s_openapi::jiff::Timestamp = "2026-11-25T12:00:00Z".parse().unwrap();
        let later = t0 + k8s_openapi::jiff::SignedDuration::from_mins(5);
        let first = condition("Ready", true, "Monitoring", "ok".into(), &[], t0);
        let same = condition(
            "Ready",
            true,
            "Monitoring",
            "still".into(),
            std::slice::from_ref(&first),
            later,
        );
        assert_eq!(same.last_transition_time, Time(t0));
        let flipped = condition("Ready", false, "ScanStalled", "no".into(), &[same], later);
        assert_eq!(flipped.last_transition_time, Time(later));
        assert_eq!(find(std::slice::from_ref(&flipped), "Ready"), Some(&flipped));
    }
}
