//! The seed of every draw: `CHAOS_SEED` when set, else a hash of the host name, so each pod of a
//! ReplicaSet differs while a restarted container of the same pod replays the same plan.

/// The seed a process uses: `explicit` (`CHAOS_SEED`), else a hash of this host's name.
pub fn resolve(explicit: Option<u64>) -> u64 {
    explicit.unwrap_or_else(|| {
        let hostname = std::env::var("HOSTNAME")
            .ok()
            .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
            .unwrap_or_default();
        from_hostname(hostname.trim())
    })
}

/// The seed a host of this name derives: what a pod named `hostname` will use.
pub fn from_hostname(hostname: &str) -> u64 {
    // FNV-1a: stable across releases and platforms, unlike std's hasher.
    hostname.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostname_seeds_are_stable() {
        assert_eq!(from_hostname("pod-a"), from_hostname("pod-a"));
        assert_ne!(from_hostname("pod-a"), from_hostname("pod-b"));
        assert_eq!(from_hostname(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(resolve(Some(7)), 7);
    }
}
