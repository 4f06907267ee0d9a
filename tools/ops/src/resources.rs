//! Stage resource names, exactly as template.yaml spells them (`!Sub ...-${Stage}`).

/// A fulfillment consumer, each with its own queue and dead-letter queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Consumer {
    Email,
    Sms,
    Handler,
    /// The funnel projector's queue (not fulfillment, but redriven the same way).
    Funnel,
}

impl Consumer {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Sms => "sms",
            Self::Handler => "handler",
            Self::Funnel => "funnel",
        }
    }
}

/// The archive of FormSubmitted events.
pub fn archive_name(stage: &str) -> String {
    format!("picasso-form-submitted-{stage}")
}

/// The funnel's counts (`FunnelTable`).
pub fn funnel_table(stage: &str) -> String {
    format!("picasso-funnel-{stage}")
}

pub fn queue_name(consumer: Consumer, stage: &str) -> String {
    format!("picasso-{}-{stage}", consumer.as_str())
}

pub fn dead_letter_queue_name(consumer: Consumer, stage: &str) -> String {
    format!("picasso-{}-dlq-{stage}", consumer.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names must match template.yaml, the one source of truth for them.
    #[test]
    fn names_are_the_ones_template_yaml_declares() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../template.yaml");
        let template = std::fs::read_to_string(path).unwrap();
        let declared = |name: String| name.replace("STAGE", "${Stage}");
        assert!(template.contains(&format!("ArchiveName: !Sub {}", declared(archive_name("STAGE")))));
        assert!(template.contains(&format!("TableName: !Sub {}\n", declared(funnel_table("STAGE")))));
        for consumer in [Consumer::Email, Consumer::Sms, Consumer::Handler, Consumer::Funnel] {
            let queue = declared(queue_name(consumer, "STAGE"));
            let dlq = declared(dead_letter_queue_name(consumer, "STAGE"));
            assert!(template.contains(&format!("QueueName: !Sub {queue}\n")), "{queue}");
            assert!(template.contains(&format!("QueueName: !Sub {dlq}\n")), "{dlq}");
        }
    }

    #[test]
    fn names_carry_the_stage() {
        assert_eq!(archive_name("local"), "picasso-form-submitted-local");
        assert_eq!(queue_name(Consumer::Sms, "staging"), "picasso-sms-staging");
        assert_eq!(dead_letter_queue_name(Consumer::Handler, "production"), "picasso-handler-dlq-production");
    }
}
