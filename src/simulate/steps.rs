//! Changes to workloads after the apply (`--step`, the next rollout of a finding): what each
//! does, when it is due, and where each one is, in order.

use super::manifest::Workload;
use super::queue::Ms;

/// When a step happens.
#[derive(Debug, Clone, PartialEq)]
pub enum When {
    /// This long after the manifests are applied.
    At(Ms),
    /// This long after the step before.
    After(Ms),
    /// Once every pod of the workload is available and the last rollout is over.
    Ready,
}

/// What a step does to a workload.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// `kubectl set image`: this tag on every chaos-inference container.
    SetImage(String),
    /// `kubectl scale --replicas`.
    Scale(u32),
    /// `kubectl apply` of a changed manifest of the same workload.
    Apply(Box<Workload>),
    /// `kubectl delete pod` of the workload's oldest pod (its grace period honoured); a
    /// ReplicaSet makes another.
    DeletePod,
}

/// A change to a workload at some moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub workload: String,
    pub action: Action,
    pub when: When,
}

/// Where a step is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepState {
    /// Not yet due: the step before has not run, or its workload is not ready.
    Waiting,
    /// On the clock, to run at a known time.
    Scheduled,
    /// Ran at this time.
    Done(Ms),
}

/// The steps in order, each with its state. A step becomes due only once the one before it
/// has run.
#[derive(Debug, Clone)]
pub struct Steps {
    steps: Vec<Step>,
    states: Vec<StepState>,
}

impl Steps {
    pub fn new(steps: &[Step]) -> Steps {
        Steps {
            steps: steps.to_vec(),
            states: vec![StepState::Waiting; steps.len()],
        }
    }

    pub fn get(&self, index: usize) -> &Step {
        &self.steps[index]
    }

    /// The first step not yet scheduled or run, when the one before it has run: steps run in
    /// order, so no later one can be due.
    fn next_waiting(&self) -> Option<usize> {
        let index = self.states.iter().position(|s| *s == StepState::Waiting)?;
        let previous_done = index == 0 || matches!(self.states[index - 1], StepState::Done(_));
        previous_done.then_some(index)
    }

    /// When the next step is due by the clock alone (`At`, `After`): its index and time, now
    /// marked scheduled.
    pub fn due_by_time(&mut self) -> Option<(usize, Ms)> {
        let index = self.next_waiting()?;
        let at = match self.steps[index].when {
            When::At(t) => t,
            When::After(d) => {
                let previous = match index.checked_sub(1).map(|i| self.states[i]) {
                    Some(StepState::Done(t)) => t,
                    _ => 0,
                };
                previous + d
            }
            When::Ready => return None,
        };
        self.states[index] = StepState::Scheduled;
        Some((index, at))
    }

    /// The next step, when it waits for its workload to be ready: its index and workload.
    pub fn waiting_for_ready(&self) -> Option<(usize, &str)> {
        let index = self.next_waiting()?;
        let step = &self.steps[index];
        (step.when == When::Ready).then_some((index, step.workload.as_str()))
    }

    /// The step is on the clock.
    pub fn scheduled(&mut self, index: usize) {
        self.states[index] = StepState::Scheduled;
    }

    /// The step ran at `now`.
    pub fn done(&mut self, index: usize, now: Ms) {
        self.states[index] = StepState::Done(now);
    }

    /// Whether the workload has steps and every one of them has run.
    pub fn all_done_for(&self, workload: &str) -> bool {
        let mut mine = self
            .steps
            .iter()
            .zip(&self.states)
            .filter(|(step, _)| step.workload == workload)
            .peekable();
        mine.peek().is_some() && mine.all(|(_, state)| matches!(state, StepState::Done(_)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(workload: &str, when: When) -> Step {
        Step {
            workload: workload.into(),
            action: Action::Scale(1),
            when,
        }
    }

    #[test]
    fn steps_come_due_in_order_each_after_the_one_before_has_run() {
        let mut steps = Steps::new(&[
            step("a", When::At(5)),
            step("a", When::After(10)),
            step("b", When::Ready),
        ]);
        assert_eq!(steps.due_by_time(), Some((0, 5)));
        assert_eq!(
            steps.due_by_time(),
            None,
            "the second waits for the first to run"
        );
        assert!(!steps.all_done_for("a"));
        steps.done(0, 7);
        assert_eq!(
            steps.due_by_time(),
            Some((1, 17)),
            "ten after the first ran"
        );
        assert_eq!(steps.waiting_for_ready(), None);
        steps.done(1, 17);
        assert!(steps.all_done_for("a"));
        assert!(!steps.all_done_for("b"));
        assert!(
            !steps.all_done_for("c"),
            "a workload with no steps has not done them"
        );
        assert_eq!(
            steps.due_by_time(),
            None,
            "the third waits for readiness, not time"
        );
        assert_eq!(steps.waiting_for_ready(), Some((2, "b")));
        steps.scheduled(2);
        assert_eq!(steps.waiting_for_ready(), None);
        steps.done(2, 30);
        assert!(steps.all_done_for("b"));
    }
}
