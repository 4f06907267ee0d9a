//! The scenario suite against the scripted model, as CI runs it.

use evals::{ScriptedModel, load_all, repo_root, run};

#[tokio::test]
async fn every_scenario_passes_against_the_scripted_model() {
    let scenarios = load_all(&repo_root().join("evals/scenarios")).expect("scenarios load");
    assert!(scenarios.len() >= 15, "{} scenarios", scenarios.len());
    let mut failures = Vec::new();
    for scenario in &scenarios {
        let outcome =
            run(scenario, ScriptedModel::new(&scenario.scripted), false).await.expect("scenario runs");
        assert!(outcome.checked > 0, "{} checks nothing", scenario.id);
        failures.extend(outcome.failures.iter().map(|f| format!("{}: {f}", scenario.id)));
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn the_suite_covers_every_behaviour_the_issue_names() {
    let scenarios = load_all(&repo_root().join("evals/scenarios")).expect("scenarios load");
    for behaviour in ["grounding", "restraint", "injection", "tone", "memory", "focus"] {
        assert!(scenarios.iter().any(|s| s.covers == behaviour), "no {behaviour} scenario");
    }
}
