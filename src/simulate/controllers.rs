//! The ReplicaSet and Deployment controllers' arithmetic, from `pkg/controller/deployment`
//! (`rolling.go`, `recreate.go`, `util/deployment_util.go`) and `pkg/controller/replicaset`:
//!
//! - `maxSurge` rounds up, `maxUnavailable` rounds down; when both come to 0, `maxUnavailable`
//!   is 1 (`ResolveFenceposts`);
//! - the new ReplicaSet grows to at most `replicas + maxSurge` pods in all (`NewRSNewReplicas`);
//! - old ReplicaSets shrink, unhealthy pods first, while at least `replicas - maxUnavailable`
//!   pods stay available (`reconcileOldReplicaSets`); a pod is available once Ready for
//!   `minReadySeconds`;
//! - a ReplicaSet deletes the least useful pods first: not running, not ready, ready for the
//!   shortest time, most restarts, newest (`controller.ActivePods`);
//! - `Recreate` scales every old ReplicaSet to 0 and waits for their pods to be gone first.

use super::manifest::{Strategy, scaled};

/// A ReplicaSet as the Deployment controller sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetState {
    /// `spec.replicas`.
    pub spec: u32,
    /// Pods available (Ready for `minReadySeconds`, not being deleted).
    pub available: u32,
    /// Pods not being deleted.
    pub active: u32,
}

/// `maxSurge` and `maxUnavailable` as pod counts for `replicas`.
pub fn fenceposts(strategy: &Strategy, replicas: u32) -> Result<(u32, u32), String> {
    match strategy {
        Strategy::Recreate => Ok((0, replicas)),
        Strategy::RollingUpdate {
            max_surge,
            max_unavailable,
        } => {
            let surge = scaled(max_surge, replicas, true).map_err(|e| format!("maxSurge: {e}"))?;
            let unavailable = scaled(max_unavailable, replicas, false)
                .map_err(|e| format!("maxUnavailable: {e}"))?;
            Ok(if surge == 0 && unavailable == 0 {
                (0, 1)
            } else {
                (surge, unavailable.min(replicas))
            })
        }
    }
}

/// One sync of a rolling update: scale the new ReplicaSet up if it may grow; otherwise scale old
/// ones down. Changes `spec` in place; returns whether anything changed.
pub fn rolling_sync(
    replicas: u32,
    surge: u32,
    unavailable: u32,
    new: &mut SetState,
    old: &mut [SetState],
) -> bool {
    // NewRSNewReplicas.
    let total: u32 = new.spec + old.iter().map(|r| r.spec).sum::<u32>();
    let max_total = replicas + surge;
    if total < max_total && new.spec < replicas {
        let grow = (max_total - total).min(replicas - new.spec);
        new.spec += grow;
        return true;
    }
    if new.spec > replicas {
        new.spec = replicas;
        return true;
    }
    // reconcileOldReplicaSets.
    let old_total: u32 = old.iter().map(|r| r.spec).sum();
    if old_total == 0 {
        return false;
    }
    let min_available = replicas.saturating_sub(unavailable);
    let new_unavailable = new.spec.saturating_sub(new.available);
    let max_scaled_down = i64::from(total) - i64::from(min_available) - i64::from(new_unavailable);
    if max_scaled_down <= 0 {
        return false;
    }
    let mut changed = false;
    // cleanupUnhealthyReplicas: old pods that are not available go first, oldest set first.
    let mut cleaned = 0u32;
    for rs in old.iter_mut() {
        if cleaned as i64 >= max_scaled_down {
            break;
        }
        if rs.available == rs.spec {
            continue;
        }
        let down = (max_scaled_down as u32 - cleaned).min(rs.spec - rs.available.min(rs.spec));
        rs.spec -= down;
        cleaned += down;
        changed |= down > 0;
    }
    // scaleDownOldReplicaSetsForRollingUpdate: keep minAvailable available.
    let available: u32 = new.available + old.iter().map(|r| r.available.min(r.spec)).sum::<u32>();
    if available > min_available {
        let mut left = available - min_available;
        for rs in old.iter_mut() {
            if left == 0 {
                break;
            }
            let down = rs.spec.min(left);
            rs.spec -= down;
            left -= down;
            changed |= down > 0;
        }
    }
    changed
}

/// One sync of a `Recreate` Deployment: old sets to 0, then, once no old pod is left, the new
/// set to `replicas`.
pub fn recreate_sync(
    replicas: u32,
    new: &mut SetState,
    old: &mut [SetState],
    old_pods_left: u32,
) -> bool {
    let mut changed = false;
    for rs in old.iter_mut() {
        if rs.spec > 0 {
            rs.spec = 0;
            changed = true;
        }
    }
    if changed || old_pods_left > 0 {
        return changed;
    }
    if new.spec != replicas {
        new.spec = replicas;
        return true;
    }
    false
}

/// What the ReplicaSet controller ranks a pod by when it deletes some.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rank {
    pub running: bool,
    pub ready: bool,
    /// When it became ready, if it is.
    pub ready_since: Option<u64>,
    pub restarts: u32,
    pub created: u64,
}

/// Indexes of the `n` pods to delete first (`controller.ActivePods` order).
pub fn to_delete(pods: &[Rank], n: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..pods.len()).collect();
    order.sort_by(|&a, &b| {
        let (a, b) = (&pods[a], &pods[b]);
        a.running
            .cmp(&b.running)
            .then(a.ready.cmp(&b.ready))
            // Ready for a shorter time (a later ready time) goes first.
            .then(b.ready_since.unwrap_or(0).cmp(&a.ready_since.unwrap_or(0)))
            .then(b.restarts.cmp(&a.restarts))
            .then(b.created.cmp(&a.created))
    });
    order.truncate(n);
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    fn rolling(surge: &str, unavailable: &str) -> Strategy {
        let v = |s: &str| match s.parse::<i32>() {
            Ok(n) => IntOrString::Int(n),
            Err(_) => IntOrString::String(s.into()),
        };
        Strategy::RollingUpdate {
            max_surge: v(surge),
            max_unavailable: v(unavailable),
        }
    }

    fn c(spec: u32, available: u32) -> SetState {
        SetState {
            spec,
            available,
            active: spec,
        }
    }

    #[test]
    fn fenceposts_round_and_never_both_zero() {
        assert_eq!(fenceposts(&rolling("25%", "25%"), 3).unwrap(), (1, 0));
        assert_eq!(fenceposts(&rolling("100%", "0"), 3).unwrap(), (3, 0));
        assert_eq!(fenceposts(&rolling("0", "100%"), 3).unwrap(), (0, 3));
        assert_eq!(
            fenceposts(&rolling("0", "10%"), 3).unwrap(),
            (0, 1),
            "both 0: one unavailable"
        );
        assert_eq!(fenceposts(&rolling("1", "5"), 3).unwrap(), (1, 3));
    }

    #[test]
    fn blue_green_starts_every_new_pod_at_once_and_keeps_every_old_one_until_they_are_available() {
        let mut new = c(0, 0);
        let mut old = [c(3, 3)];
        assert!(rolling_sync(3, 3, 0, &mut new, &mut old));
        assert_eq!((new.spec, old[0].spec), (3, 3), "peak 6 pods");
        assert!(
            !rolling_sync(3, 3, 0, &mut new, &mut old),
            "nothing new is available yet"
        );
        new.available = 2;
        assert!(rolling_sync(3, 3, 0, &mut new, &mut old));
        assert_eq!(
            old[0].spec, 1,
            "two old ones go as two new ones are available"
        );
    }

    #[test]
    fn max_unavailable_100_percent_drops_every_old_pod_first() {
        let mut new = c(0, 0);
        let mut old = [c(3, 3)];
        assert!(rolling_sync(3, 0, 3, &mut new, &mut old));
        assert_eq!(
            (new.spec, old[0].spec),
            (0, 0),
            "all old pods go, none new yet"
        );
        assert!(rolling_sync(3, 0, 3, &mut new, &mut old));
        assert_eq!(new.spec, 3);
    }

    #[test]
    fn the_default_25_percent_replaces_one_pod_at_a_time() {
        let (surge, unavailable) = fenceposts(&rolling("25%", "25%"), 3).unwrap();
        let mut new = c(0, 0);
        let mut old = [c(3, 3)];
        rolling_sync(3, surge, unavailable, &mut new, &mut old);
        assert_eq!((new.spec, old[0].spec), (1, 3));
        new.available = 1;
        rolling_sync(3, surge, unavailable, &mut new, &mut old);
        assert_eq!(old[0].spec, 2);
    }

    #[test]
    fn recreate_waits_for_old_pods_to_go() {
        let mut new = c(0, 0);
        let mut old = [c(3, 3)];
        assert!(recreate_sync(3, &mut new, &mut old, 3));
        assert!(
            !recreate_sync(3, &mut new, &mut old, 1),
            "old pods still terminating"
        );
        assert!(recreate_sync(3, &mut new, &mut old, 0));
        assert_eq!(new.spec, 3);
    }

    #[test]
    fn deletion_takes_unready_then_recently_ready_then_newest() {
        let pods = [
            Rank {
                running: true,
                ready: true,
                ready_since: Some(10),
                restarts: 0,
                created: 0,
            },
            Rank {
                running: true,
                ready: true,
                ready_since: Some(20),
                restarts: 0,
                created: 1,
            },
            Rank {
                running: true,
                ready: false,
                ready_since: None,
                restarts: 0,
                created: 2,
            },
            Rank {
                running: false,
                ready: false,
                ready_since: None,
                restarts: 0,
                created: 3,
            },
        ];
        assert_eq!(to_delete(&pods, 3), [3, 2, 1]);
    }
}
