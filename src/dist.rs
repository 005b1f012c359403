//! Data parallelism over processes: the group of ranks a run's batches are split across.
//!
//! In the default build, or in a process not started by `mpirun`, the group is one process and
//! every collective is the identity, so a single process runs exactly the trainer's code. With the
//! cargo feature `mpi`, a process started by `mpirun -n P` (Open MPI, MPICH, Slurm's PMI) joins
//! `MPI_COMM_WORLD`, and each collective below is a fixed sequence of MPI calls.
//!
//! Reproducibility: [`Group::sum`] adds the ranks' contributions in rank order (a reduce-scatter
//! by all-to-all, each rank summing its slice over ranks `0, 1, …, P − 1`, then an all-gather), so
//! the result is the same on every rank and the same in every run with the same `P`, whatever
//! the MPI library's own reduction algorithms would do.

use std::ops::Range;

/// One process's place in the group: its rank and the number of ranks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Group {
    rank: usize,
    size: usize,
}

impl Default for Group {
    fn default() -> Group {
        Group::single()
    }
}

/// Keeps MPI initialised while it lives (finalises on drop); nothing without MPI.
pub struct Session {
    #[cfg(feature = "mpi")]
    _universe: Option<mpi::environment::Universe>,
}

/// Elements per collective call (the MPI counts are `i32`; also bounds the temporary buffers).
#[cfg(feature = "mpi")]
const BLOCK: usize = 1 << 24;

/// The number of ranks the launcher (`mpirun`, `srun`) says this process belongs to, if any.
fn launched_size() -> Option<usize> {
    ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS"]
        .iter()
        .find_map(|k| std::env::var(k).ok()?.parse().ok())
}

/// Joins the job this process was launched into: MPI when started by an MPI launcher (feature
/// `mpi`), one process otherwise. Without the feature, a launch with more than one rank is refused
/// (the ranks would otherwise each run the whole job into the same folder).
pub fn init() -> Result<(Group, Session), String> {
    #[cfg(feature = "mpi")]
    {
        if launched_size().is_some() {
            let (universe, _) =
                mpi::initialize_with_threading(mpi::Threading::Funneled).ok_or("MPI was already initialised")?;
            use mpi::traits::Communicator;
            let world = universe.world();
            let group = Group {
                rank: world.rank() as usize,
                size: world.size() as usize,
            };
            return Ok((
                group,
                Session {
                    _universe: Some(universe),
                },
            ));
        }
        Ok((Group::single(), Session { _universe: None }))
    }
    #[cfg(not(feature = "mpi"))]
    {
        match launched_size() {
            Some(p) if p > 1 => Err(format!(
                "started as one of {p} MPI ranks, but this stde was built without MPI; build it with `cargo build --release --features mpi`"
            )),
            _ => Ok((Group::single(), Session {})),
        }
    }
}

/// Part `r` of `n` items split over `p` parts: `[r·n/p, (r+1)·n/p)`.
pub fn part(n: usize, p: usize, r: usize) -> Range<usize> {
    let at = |r: usize| ((n as u128 * r as u128) / p as u128) as usize;
    at(r)..at(r + 1)
}

impl Group {
    /// A group of one process.
    pub fn single() -> Group {
        Group { rank: 0, size: 1 }
    }

    /// This process's rank, `0 ..` [`size`](Self::size).
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// Number of ranks.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Whether this is rank 0 (the one that writes files and prints).
    pub fn is_root(&self) -> bool {
        self.rank == 0
    }

    /// This rank's share of `n` items (contiguous; shares differ in length by at most one).
    pub fn share(&self, n: usize) -> Range<usize> {
        part(n, self.size, self.rank)
    }

    /// Replaces `v` on every rank by the sum over ranks, added in rank order (identical on all
    /// ranks and reproducible).
    pub fn sum(&self, v: &mut [f64]) {
        if self.size == 1 {
            return;
        }
        #[cfg(not(feature = "mpi"))]
        let _ = v;
        #[cfg(feature = "mpi")]
        for block in v.chunks_mut(BLOCK) {
            self.sum_block(block);
        }
    }

    #[cfg(feature = "mpi")]
    fn sum_block(&self, v: &mut [f64]) {
        use mpi::Count;
        use mpi::datatype::{Partition, PartitionMut};
        use mpi::traits::CommunicatorCollectives;
        let world = mpi::topology::SimpleCommunicator::world();
        let (p, n) = (self.size, v.len());
        let slices: Vec<Range<usize>> = (0..p).map(|r| part(n, p, r)).collect();
        let counts: Vec<Count> = slices.iter().map(|s| s.len() as Count).collect();
        let displs: Vec<Count> = slices.iter().map(|s| s.start as Count).collect();
        let m = slices[self.rank].len();
        // reduce-scatter: slice r of every rank's vector goes to rank r
        let mut gathered = vec![0.0f64; m * p];
        {
            let send = Partition::new(&*v, &counts[..], &displs[..]);
            let recv_counts = vec![m as Count; p];
            let recv_displs: Vec<Count> = (0..p).map(|q| (q * m) as Count).collect();
            let mut recv = PartitionMut::new(&mut gathered[..], recv_counts, recv_displs);
            world.all_to_all_varcount_into(&send, &mut recv);
        }
        let mut mine = vec![0.0f64; m];
        for q in 0..p {
            for (a, g) in mine.iter_mut().zip(&gathered[q * m..(q + 1) * m]) {
                *a += g;
            }
        }
        let mut all = PartitionMut::new(v, &counts[..], &displs[..]);
        world.all_gather_varcount_into(&mine[..], &mut all);
    }

    /// Replaces `v` on every rank by rank 0's `v` (same length on all ranks).
    pub fn broadcast(&self, v: &mut [f64]) {
        if self.size == 1 {
            return;
        }
        #[cfg(not(feature = "mpi"))]
        let _ = v;
        #[cfg(feature = "mpi")]
        {
            use mpi::traits::{Communicator, Root};
            let world = mpi::topology::SimpleCommunicator::world();
            for block in v.chunks_mut(BLOCK) {
                world.process_at_rank(0).broadcast_into(block);
            }
        }
    }

    /// Replaces `bytes` on every rank by rank 0's (any lengths).
    pub fn broadcast_bytes(&self, bytes: &mut Vec<u8>) {
        if self.size == 1 {
            return;
        }
        #[cfg(not(feature = "mpi"))]
        let _ = bytes;
        #[cfg(feature = "mpi")]
        {
            use mpi::traits::{Communicator, Root};
            let world = mpi::topology::SimpleCommunicator::world();
            let mut len = bytes.len() as u64;
            world.process_at_rank(0).broadcast_into(&mut len);
            bytes.resize(len as usize, 0);
            for block in bytes.chunks_mut(BLOCK) {
                world.process_at_rank(0).broadcast_into(block);
            }
        }
    }

    /// Whether any rank failed: every rank passes its own `failed` and learns how many ranks
    /// failed and whether rank 0 did (so that exactly one rank reports each problem).
    pub fn agree(&self, failed: bool) -> (usize, bool) {
        let mut flags = [
            f64::from(u8::from(failed)),
            f64::from(u8::from(failed && self.is_root())),
        ];
        self.sum(&mut flags);
        (flags[0] as usize, flags[1] > 0.0)
    }

    /// Every rank's `x`, in rank order.
    pub fn gather(&self, x: u64) -> Vec<u64> {
        if self.size == 1 {
            return vec![x];
        }
        #[allow(unused_mut)]
        let mut all = vec![0u64; self.size];
        #[cfg(feature = "mpi")]
        {
            use mpi::traits::CommunicatorCollectives;
            mpi::topology::SimpleCommunicator::world().all_gather_into(&x, &mut all[..]);
        }
        all
    }

    /// Ends every rank of the job with exit code `code` (a single process just exits).
    pub fn abort(&self, code: i32) -> ! {
        #[cfg(feature = "mpi")]
        if self.size > 1 {
            use mpi::traits::Communicator;
            mpi::topology::SimpleCommunicator::world().abort(code);
        }
        std::process::exit(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_cover_the_items_once_and_differ_by_at_most_one() {
        for n in [0usize, 1, 7, 100, 101] {
            for p in 1..=5 {
                let parts: Vec<_> = (0..p).map(|r| part(n, p, r)).collect();
                assert_eq!(parts[0].start, 0);
                assert_eq!(parts[p - 1].end, n);
                for w in parts.windows(2) {
                    assert_eq!(w[0].end, w[1].start);
                }
                let (lo, hi) = (
                    parts.iter().map(|r| r.len()).min().unwrap(),
                    parts.iter().map(|r| r.len()).max().unwrap(),
                );
                assert!(hi - lo <= 1, "n {n} p {p}: {parts:?}");
            }
        }
    }

    #[test]
    fn a_single_process_group_is_the_identity() {
        let g = Group::single();
        assert!(g.is_root());
        assert_eq!(g.share(10), 0..10);
        let mut v = vec![1.5, -2.0];
        g.sum(&mut v);
        g.broadcast(&mut v);
        assert_eq!(v, vec![1.5, -2.0]);
        assert_eq!(g.gather(7), vec![7]);
    }
}
