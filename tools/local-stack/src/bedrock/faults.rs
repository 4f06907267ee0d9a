//! What the stand-in is told to do wrong, and how fast it talks. Tests set
//! these from Rust or over HTTP; each converse-stream request consumes its
//! share of the one-shot faults when it is admitted.

use std::{collections::BTreeSet, time::Duration};

use serde::{Deserialize, Serialize};

use super::actions::MarkerStyle;

pub const DEFAULT_DELTA_DELAY: Duration = Duration::from_millis(25);
pub const DEFAULT_FIRST_TOKEN_DELAY: Duration = Duration::ZERO;
pub const DEFAULT_FAIL_MESSAGE: &str = "The model stream was interrupted. Please retry your request.";

/// The current fault settings; also the JSON of `GET/POST /_standin/faults`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Faults {
    /// Answer this many of the next converse-stream requests with 429 ThrottlingException.
    pub throttle_next: u32,
    /// Break this many of the next streams with a modelStreamErrorException...
    pub fail_next: u32,
    /// ...after this many text deltas.
    pub fail_after_deltas: u32,
    pub fail_message: String,
    /// Leave this many of the next streams open and silent (as a hung model does)...
    pub stall_next: u32,
    /// ...after this many text deltas (0: before the first event).
    pub stall_after_deltas: u32,
    /// Extra wait before the first text delta.
    pub first_token_delay_ms: u64,
    /// Wait between text deltas.
    pub delta_delay_ms: u64,
    /// Model ids answered with 400 ValidationException, as retired models are.
    pub rejected_models: BTreeSet<String>,
    /// Answer every Retrieve with 500 InternalServerException.
    pub retrieve_fails: bool,
    /// Wait this long before answering each Retrieve.
    pub retrieve_delay_ms: u64,
    /// How an answer's action marker is written, when its prompt asks for one.
    pub action_marker: MarkerStyle,
}

impl Faults {
    /// No faults, the given pace.
    pub fn with_pace(first_token_delay: Duration, delta_delay: Duration) -> Self {
        Self {
            throttle_next: 0,
            fail_next: 0,
            fail_after_deltas: 0,
            fail_message: DEFAULT_FAIL_MESSAGE.to_owned(),
            stall_next: 0,
            stall_after_deltas: 0,
            first_token_delay_ms: millis(first_token_delay),
            delta_delay_ms: millis(delta_delay),
            rejected_models: BTreeSet::new(),
            retrieve_fails: false,
            retrieve_delay_ms: 0,
            action_marker: MarkerStyle::default(),
        }
    }

    /// Decides one converse-stream request, using up one-shot faults.
    pub fn admit(&mut self, model_id: &str) -> Admission {
        if self.rejected_models.contains(model_id) {
            return Admission::Reject;
        }
        if self.throttle_next > 0 {
            self.throttle_next -= 1;
            return Admission::Throttle;
        }
        let failure = (self.fail_next > 0).then(|| {
            self.fail_next -= 1;
            MidStreamFailure {
                after_deltas: self.fail_after_deltas as usize,
                message: self.fail_message.clone(),
            }
        });
        let stall_after = (self.stall_next > 0).then(|| {
            self.stall_next -= 1;
            self.stall_after_deltas as usize
        });
        Admission::Stream(StreamPlan {
            first_token_delay: Duration::from_millis(self.first_token_delay_ms),
            delta_delay: Duration::from_millis(self.delta_delay_ms),
            failure,
            stall_after,
        })
    }

    /// Changes only the fields the patch names.
    pub fn apply(&mut self, patch: FaultPatch) {
        let FaultPatch {
            throttle_next,
            fail_next,
            fail_after_deltas,
            fail_message,
            stall_next,
            stall_after_deltas,
            first_token_delay_ms,
            delta_delay_ms,
            rejected_models,
            retrieve_fails,
            retrieve_delay_ms,
            action_marker,
        } = patch;
        set(&mut self.action_marker, action_marker);
        set(&mut self.retrieve_delay_ms, retrieve_delay_ms);
        set(&mut self.stall_next, stall_next);
        set(&mut self.stall_after_deltas, stall_after_deltas);
        set(&mut self.throttle_next, throttle_next);
        set(&mut self.fail_next, fail_next);
        set(&mut self.fail_after_deltas, fail_after_deltas);
        set(&mut self.fail_message, fail_message);
        set(&mut self.first_token_delay_ms, first_token_delay_ms);
        set(&mut self.delta_delay_ms, delta_delay_ms);
        set(&mut self.rejected_models, rejected_models);
        set(&mut self.retrieve_fails, retrieve_fails);
    }
}

fn set<T>(field: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *field = value;
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// `POST /_standin/faults`: any subset of the fields of [`Faults`]. Unknown
/// fields are refused, so a misspelt fault fails the test that sets it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultPatch {
    pub throttle_next: Option<u32>,
    pub fail_next: Option<u32>,
    pub fail_after_deltas: Option<u32>,
    pub fail_message: Option<String>,
    pub stall_next: Option<u32>,
    pub stall_after_deltas: Option<u32>,
    pub first_token_delay_ms: Option<u64>,
    pub delta_delay_ms: Option<u64>,
    pub rejected_models: Option<BTreeSet<String>>,
    pub retrieve_fails: Option<bool>,
    pub retrieve_delay_ms: Option<u64>,
    pub action_marker: Option<MarkerStyle>,
}

/// What happens to one converse-stream request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    Reject,
    Throttle,
    Stream(StreamPlan),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamPlan {
    pub first_token_delay: Duration,
    pub delta_delay: Duration,
    pub failure: Option<MidStreamFailure>,
    /// Go silent after this many deltas (0: before the first event) and stay open.
    pub stall_after: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MidStreamFailure {
    pub after_deltas: usize,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn faults() -> Faults {
        Faults::with_pace(Duration::ZERO, Duration::from_millis(5))
    }

    #[test]
    fn throttling_applies_to_exactly_the_next_n_requests() {
        let mut faults = faults();
        faults.throttle_next = 2;
        assert_eq!(faults.admit("m"), Admission::Throttle);
        assert_eq!(faults.admit("m"), Admission::Throttle);
        assert!(matches!(faults.admit("m"), Admission::Stream(_)));
    }

    #[test]
    fn a_rejected_model_is_rejected_every_time_and_uses_up_no_throttle() {
        let mut faults = faults();
        faults.rejected_models.insert("old".into());
        faults.throttle_next = 1;
        assert_eq!(faults.admit("old"), Admission::Reject);
        assert_eq!(faults.admit("old"), Admission::Reject);
        assert_eq!(faults.admit("new"), Admission::Throttle);
    }

    #[test]
    fn mid_stream_failures_carry_their_point_and_message() {
        let mut faults = faults();
        faults.apply(FaultPatch {
            fail_next: Some(1),
            fail_after_deltas: Some(3),
            fail_message: Some("boom".into()),
            ..FaultPatch::default()
        });
        let Admission::Stream(plan) = faults.admit("m") else {
            panic!("expected a stream");
        };
        assert_eq!(plan.failure, Some(MidStreamFailure { after_deltas: 3, message: "boom".into() }));
        let Admission::Stream(plan) = faults.admit("m") else {
            panic!("expected a stream");
        };
        assert_eq!(plan.failure, None);
        assert_eq!(plan.delta_delay, Duration::from_millis(5));
    }

    #[test]
    fn a_stall_applies_to_exactly_the_next_n_streams_at_its_point() {
        let mut faults = faults();
        faults.apply(FaultPatch {
            stall_next: Some(1),
            stall_after_deltas: Some(2),
            ..FaultPatch::default()
        });
        let Admission::Stream(plan) = faults.admit("m") else {
            panic!("expected a stream");
        };
        assert_eq!(plan.stall_after, Some(2));
        let Admission::Stream(plan) = faults.admit("m") else {
            panic!("expected a stream");
        };
        assert_eq!(plan.stall_after, None);
    }

    #[test]
    fn a_patch_changes_only_what_it_names() {
        let mut faults = faults();
        faults.retrieve_fails = true;
        let patch: FaultPatch = serde_json::from_str(r#"{"delta_delay_ms": 1}"#).unwrap_or_default();
        faults.apply(patch);
        assert!(faults.retrieve_fails);
        assert_eq!(faults.delta_delay_ms, 1);
    }

    #[test]
    fn a_misspelt_fault_is_refused() {
        assert!(serde_json::from_str::<FaultPatch>(r#"{"throttle": 1}"#).is_err());
    }
}
