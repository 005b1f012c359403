//! Exact probe plans: a list of jets (which tangent slot carries which direction) and read-out
//! weights such that `L u = Σ weight · y_n(probe)` exactly (derivative convention, spec §4).
//!
//! A mixed partial `∂^q` over distinct coordinates `i_1..i_T` (multiplicities `q_t`) is read off one
//! sparse jet with `v_{j_t} = e_{i_t}` at order `k = Σ j_t q_t`: `y_k = κ(q)·∂^q u + Σ_{m≠q} κ(m)·∂^m u`
//! over the other multiplicity vectors with `Σ j_t m_t = k`, `κ(m) = k!/Π m_t!(j_t!)^{m_t}`. We choose
//! distinct slot orders `j` with the lowest `k` such that every contaminating `m` involves fewer
//! coordinates, then subtract those contaminants with their own (recursively built) recipes. Pure
//! partials `∂_i^n` need no correction (`v_1 = e_i`, `y_n`). Identical jets are shared, and a jet
//! serves every lower order it contains.

use super::{Family, Operator, OperatorError};
use crate::real::factorial;
use std::collections::HashMap;
use std::fmt;

/// The direction carried by one tangent slot of a probe.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProbeDirection {
    /// The coordinate vector `e_i`.
    Coord(usize),
    /// A dense vector: index into [`ProbePlan::directions`].
    Dense(usize),
    /// A few non-zeros `Σ c·e_i` (as `(i, c)` pairs, `c` an integer-valued weight).
    Sparse(Vec<(usize, i64)>),
}

/// One jet of a plan: `order` and the non-zero slots (`slot k` carries `v_k`, derivative convention).
#[derive(Clone, Debug, PartialEq)]
pub struct Probe {
    /// Jet order `K`.
    pub order: usize,
    /// `(k, v_k)` for the non-zero slots, increasing `k`.
    pub slots: Vec<(usize, ProbeDirection)>,
}

/// One read-out: `weight · y_n` of probe `probe`.
#[derive(Clone, Debug, PartialEq)]
pub struct Readout {
    /// Index into [`ProbePlan::probes`].
    pub probe: usize,
    /// Output order `n` (0 is `u`).
    pub n: usize,
    /// Weight.
    pub weight: f64,
}

/// Jets and read-out weights whose weighted sum is an operator's value.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProbePlan {
    /// The jets.
    pub probes: Vec<Probe>,
    /// `L u = Σ weight · y_n(probe)`.
    pub readout: Vec<Readout>,
    /// Dense directions referenced by [`ProbeDirection::Dense`].
    pub directions: Vec<Vec<f64>>,
}

/// A direction over abstract variables: `Σ coeff·e_var`, sorted by variable.
type AbsDir = Vec<(usize, i64)>;

/// A plan for abstract variables `0..T` (instantiated with actual coordinates later).
#[derive(Clone, Debug, Default)]
struct Recipe {
    /// Abstract jets: slots `(j, direction)` (direction: `Σ coeff·e_var`, sorted) and order.
    jets: Vec<(Vec<(usize, AbsDir)>, usize)>,
    /// `(jet, n, weight)`.
    readout: Vec<(usize, usize, f64)>,
}

impl Recipe {
    fn add_jet(&mut self, slots: Vec<(usize, AbsDir)>, order: usize) -> usize {
        if let Some(i) = self.jets.iter().position(|(s, _)| *s == slots) {
            self.jets[i].1 = self.jets[i].1.max(order);
            return i;
        }
        self.jets.push((slots, order));
        self.jets.len() - 1
    }
}

/// `κ(m) = k! / Π m_t! (j_t!)^{m_t}`.
fn kappa(j: &[usize], m: &[usize], k: usize) -> f64 {
    let den: f64 = j
        .iter()
        .zip(m)
        .map(|(&jt, &mt)| factorial(mt) * factorial(jt).powi(mt as i32))
        .product();
    factorial(k) / den
}

/// All `m ≥ 0` with `Σ j_t m_t = k`.
fn representations(j: &[usize], k: usize) -> Vec<Vec<usize>> {
    fn rec(j: &[usize], t: usize, left: usize, cur: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
        if t == j.len() {
            if left == 0 {
                out.push(cur.clone());
            }
            return;
        }
        for m in 0..=left / j[t] {
            cur.push(m);
            rec(j, t + 1, left - m * j[t], cur, out);
            cur.pop();
        }
    }
    let mut out = Vec::new();
    rec(j, 0, k, &mut Vec::new(), &mut out);
    out
}

/// Whether `q` is the only representation of `k` using every variable (no full-support contaminant).
fn unique_full_support(j: &[usize], k: usize) -> bool {
    let base: usize = j.iter().sum();
    if base > k {
        return false;
    }
    // count representations of k − Σj with coins j (m − 1 ≥ 0), stopping at 2
    let r = k - base;
    let mut ways = vec![0u8; r + 1];
    ways[0] = 1;
    for &c in j {
        for v in c..=r {
            ways[v] = (ways[v] + ways[v - c]).min(2);
        }
    }
    ways[r] == 1
}

/// Candidate slot orders for multiplicities `q`: distinct `j`, no full-support contaminant, jet
/// order `k ≤ k_max`; variables with equal multiplicity get increasing slots (the others are the
/// same recipe with variables renamed).
fn candidates(q: &[usize], k_max: usize) -> Vec<(Vec<usize>, usize)> {
    fn rec(q: &[usize], t: usize, used: &mut Vec<usize>, k_max: usize, out: &mut Vec<(Vec<usize>, usize)>) {
        let k: usize = used.iter().zip(q).map(|(j, m)| j * m).sum();
        if t == q.len() {
            if unique_full_support(used, k) {
                out.push((used.clone(), k));
            }
            return;
        }
        let rest_min: usize = q[t + 1..].iter().sum();
        let start = if t > 0 && q[t] == q[t - 1] { used[t - 1] + 1 } else { 1 };
        for jt in start.. {
            if k + jt * q[t] + rest_min > k_max {
                break;
            }
            if used.contains(&jt) {
                continue;
            }
            used.push(jt);
            rec(q, t + 1, used, k_max, out);
            used.pop();
        }
    }
    let mut out = Vec::new();
    rec(q, 0, &mut Vec::new(), k_max, &mut out);
    out
}

/// Cost of a recipe: the sum of its jets' orders (matrix products grow linearly with the order).
fn cost(r: &Recipe) -> usize {
    r.jets.iter().map(|(_, k)| k).sum()
}

/// The recipe for `∂^q` built on slot orders `j` at jet order `k`.
fn recipe_with(q: &[usize], j: &[usize], k: usize, cache: &mut HashMap<Vec<usize>, Option<Recipe>>) -> Option<Recipe> {
    let mut out = Recipe::default();
    let main = out.add_jet(j.iter().enumerate().map(|(t, &jt)| (jt, vec![(t, 1)])).collect(), k);
    let kq = kappa(j, q, k);
    out.readout.push((main, k, 1.0 / kq));
    for m in representations(j, k) {
        if m == q {
            continue;
        }
        let support: Vec<usize> = (0..q.len()).filter(|&t| m[t] > 0).collect();
        let sub_q: Vec<usize> = support.iter().map(|&t| m[t]).collect();
        let w = -kappa(j, &m, k) / kq;
        let sub = recipe(&sub_q, cache)?;
        let map: Vec<usize> = sub
            .jets
            .iter()
            .map(|(slots, order)| {
                let slots = slots
                    .iter()
                    .map(|(jj, dir)| (*jj, dir.iter().map(|&(v, c)| (support[v], c)).collect()))
                    .collect();
                out.add_jet(slots, *order)
            })
            .collect();
        out.readout
            .extend(sub.readout.iter().map(|&(jet, n, wt)| (map[jet], n, w * wt)));
    }
    Some(out)
}

/// Polarisation (spec §3.4) with repeated directions: for `w` = `e_t` repeated `q_t` times,
/// `D^k u[w_1..w_k] = 1/(k!·2^{k−1}) Σ_{ε, ε_1 = +1} Π ε · D^k u[(Σ ε_i w_i)^{×k}]`; sign patterns
/// giving the same direction are merged.
fn polarised(q: &[usize]) -> Recipe {
    let k: usize = q.iter().sum();
    let owner: Vec<usize> = q
        .iter()
        .enumerate()
        .flat_map(|(t, &m)| std::iter::repeat_n(t, m))
        .collect();
    let mut weights: HashMap<AbsDir, f64> = HashMap::new();
    let norm = factorial(k) * 2f64.powi(k as i32 - 1);
    for bits in 0..(1u64 << (k - 1)) {
        let mut dir = vec![0i64; q.len()];
        let mut sign = 1.0;
        for (i, &t) in owner.iter().enumerate() {
            let e = if i > 0 && bits & (1 << (i - 1)) != 0 { -1 } else { 1 };
            dir[t] += e;
            sign *= e as f64;
        }
        let dir: AbsDir = dir.into_iter().enumerate().filter(|&(_, c)| c != 0).collect();
        *weights.entry(dir).or_insert(0.0) += sign / norm;
    }
    let mut entries: Vec<(AbsDir, f64)> = weights.into_iter().filter(|(_, w)| *w != 0.0).collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = Recipe::default();
    for (dir, w) in entries {
        let jet = out.add_jet(vec![(1, dir)], k);
        out.readout.push((jet, k, w));
    }
    out
}

/// Jet orders a plan may use (the engine's limit).
const MAX_PLAN_ORDER: usize = crate::jet::MAX_ORDER;

/// Mixed partials in more distinct coordinates than this are polarised without a search.
const MAX_SEARCH_VARS: usize = 5;

/// Most jets one partial's recipe may have (polarisation of an order-k mixed partial in many
/// coordinates needs up to 2^{k−1}).
pub const MAX_RECIPE_JETS: u64 = 1 << 16;

/// Most terms an exact plan may expand to (a Laplacian in d = 4·10⁶, a biharmonic in d ≈ 2800).
pub const MAX_EXACT_TERMS: u128 = 4_000_000;

/// The cheapest recipe for `∂^q` (pure partials need one jet; mixed ones search slot orders a
/// few orders above the lowest possible and keep the lowest [`cost`]).
fn recipe(q: &[usize], cache: &mut HashMap<Vec<usize>, Option<Recipe>>) -> Option<Recipe> {
    if let Some(r) = cache.get(q) {
        return r.clone();
    }
    if q.iter().sum::<usize>() > MAX_PLAN_ORDER {
        return None;
    }
    // mark as in progress: a contaminant never needs its own parent, but stay safe
    cache.insert(q.to_vec(), None);
    let out = if q.len() == 1 {
        let mut out = Recipe::default();
        let jet = out.add_jet(vec![(1, vec![(0, 1)])], q[0]);
        out.readout.push((jet, q[0], 1.0));
        Some(out)
    } else if q.len() > MAX_SEARCH_VARS {
        // the slot-order search grows combinatorially with the number of distinct coordinates
        // (six took ~50 s) and cannot beat polarisation there
        Some(polarised(q))
    } else {
        // lowest conceivable order: largest multiplicities on the smallest slots
        let mut sorted = q.to_vec();
        sorted.sort_unstable_by(|a, b| b.cmp(a));
        let k_min: usize = sorted.iter().enumerate().map(|(i, m)| (i + 1) * m).sum();
        let mut best: Option<Recipe> = None;
        let mut k_max = k_min + 6;
        loop {
            for (j, k) in candidates(q, k_max.min(MAX_PLAN_ORDER)) {
                let Some(r) = recipe_with(q, &j, k, cache) else {
                    continue;
                };
                if best
                    .as_ref()
                    .is_none_or(|b| (cost(&r), r.jets[0].1) < (cost(b), b.jets[0].1))
                {
                    best = Some(r);
                }
            }
            if best.is_some() || k_max >= MAX_PLAN_ORDER {
                break;
            }
            k_max += 6;
        }
        // polarisation needs no correction at all; take it when it is cheaper or the only way
        let polar = polarised(q);
        match best {
            Some(b) if cost(&b) <= cost(&polar) => Some(b),
            _ => Some(polar),
        }
    };
    cache.insert(q.to_vec(), out.clone());
    out
}

/// Builds plans term by term, sharing identical jets. A builder can be reused
/// ([`PlanBuilder::reset`]): it keeps the recipes it worked out and its buffers, so that
/// rebuilding a plan of the same shape (an estimator's draw at each training step) allocates
/// nothing.
#[derive(Debug, Default)]
pub struct PlanBuilder {
    plan: ProbePlan,
    /// Probe lookup: the hash of a probe's slots → the first probe with that hash.
    heads: HashMap<u64, usize>,
    /// The next probe with the same slot hash (`usize::MAX`: none), per probe.
    chain: Vec<usize>,
    recipes: HashMap<Vec<usize>, Option<Recipe>>,
    weights: HashMap<(usize, usize), f64>,
    value_weight: f64,
    /// Slot lists of recycled probes (emptied), reused by new probes.
    spare_slots: Vec<Vec<(usize, ProbeDirection)>>,
    /// Scratch of [`PlanBuilder::add_partial`]: sorted coordinates, distinct ones, multiplicities,
    /// a recipe's probe indices and one probe's slots.
    coords: Vec<usize>,
    vars: Vec<usize>,
    q: Vec<usize>,
    map: Vec<usize>,
    slots: Vec<(usize, ProbeDirection)>,
}

/// The lookup hash of a probe's slots (deterministic).
fn slots_hash(slots: &[(usize, ProbeDirection)]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    slots.hash(&mut h);
    h.finish()
}

/// The index of the probe with `slots` (its order raised to at least `order`), added if new.
fn probe_index(
    plan: &mut ProbePlan,
    heads: &mut HashMap<u64, usize>,
    chain: &mut Vec<usize>,
    spare: &mut Vec<Vec<(usize, ProbeDirection)>>,
    slots: &[(usize, ProbeDirection)],
    order: usize,
) -> usize {
    let h = slots_hash(slots);
    let head = heads.get(&h).copied();
    let mut at = head.unwrap_or(usize::MAX);
    while at != usize::MAX {
        if plan.probes[at].slots == slots {
            let p = &mut plan.probes[at];
            p.order = p.order.max(order);
            return at;
        }
        at = chain[at];
    }
    let mut owned = spare.pop().unwrap_or_default();
    owned.extend_from_slice(slots);
    plan.probes.push(Probe { order, slots: owned });
    let i = plan.probes.len() - 1;
    chain.push(head.unwrap_or(usize::MAX));
    heads.insert(h, i);
    i
}

impl PlanBuilder {
    /// An empty builder.
    pub fn new() -> PlanBuilder {
        PlanBuilder::default()
    }

    /// Starts a new plan, keeping the recipes worked out so far; `recycled` (an earlier plan
    /// that is no longer needed) lends its buffers to the new one.
    pub fn reset(&mut self, recycled: ProbePlan) {
        let ProbePlan {
            mut probes,
            mut readout,
            mut directions,
        } = recycled;
        self.recycle_slots(probes.drain(..));
        readout.clear();
        directions.clear();
        let old = std::mem::replace(
            &mut self.plan,
            ProbePlan {
                probes,
                readout,
                directions,
            },
        );
        self.recycle_slots(old.probes);
        self.heads.clear();
        self.chain.clear();
        self.weights.clear();
        self.value_weight = 0.0;
    }

    /// Keeps the (emptied) slot lists of `probes` for the next probes.
    fn recycle_slots(&mut self, probes: impl IntoIterator<Item = Probe>) {
        self.spare_slots.extend(probes.into_iter().map(|p| {
            let mut slots = p.slots;
            slots.clear();
            slots
        }));
    }

    /// [`probe_index`] on this builder's plan.
    fn probe(&mut self, slots: &[(usize, ProbeDirection)], order: usize) -> usize {
        probe_index(
            &mut self.plan,
            &mut self.heads,
            &mut self.chain,
            &mut self.spare_slots,
            slots,
            order,
        )
    }

    fn read(&mut self, probe: usize, n: usize, weight: f64) {
        *self.weights.entry((probe, n)).or_insert(0.0) += weight;
    }

    /// Adds `coeff · ∂^index u` (`index`: one coordinate per differentiation; empty for `u`).
    /// Fails only if no exact recipe fits within the engine's jet order.
    pub fn add_partial(&mut self, coeff: f64, index: &[usize]) -> Result<(), OperatorError> {
        let mut coords = std::mem::take(&mut self.coords);
        coords.clear();
        coords.extend_from_slice(index);
        let out = self.add_sorted_partial(coeff, &mut coords);
        self.coords = coords;
        out
    }

    /// Adds `coeff · ∂_i^order u` (a pure partial; `order ≥ 1`).
    pub fn add_pure_partial(&mut self, coeff: f64, i: usize, order: usize) -> Result<(), OperatorError> {
        let mut coords = std::mem::take(&mut self.coords);
        coords.clear();
        coords.resize(order, i);
        let out = self.add_sorted_partial(coeff, &mut coords);
        self.coords = coords;
        out
    }

    /// [`PlanBuilder::add_partial`] of the coordinates in `coords` (sorted here).
    fn add_sorted_partial(&mut self, coeff: f64, coords: &mut [usize]) -> Result<(), OperatorError> {
        if coords.is_empty() {
            self.value_weight += coeff;
            return Ok(());
        }
        coords.sort_unstable();
        let (vars, q) = (&mut self.vars, &mut self.q);
        vars.clear();
        q.clear();
        for &c in coords.iter() {
            if vars.last() == Some(&c) {
                *q.last_mut().expect("a multiplicity per variable") += 1;
            } else {
                vars.push(c);
                q.push(1);
            }
        }
        let k: usize = q.iter().sum();
        if q.len() > MAX_SEARCH_VARS && k <= MAX_PLAN_ORDER && (k - 1) as u32 > MAX_RECIPE_JETS.ilog2() {
            return Err(OperatorError::Invalid(format!(
                "d{coords:?} mixes {} coordinates at order {k}: its exact plan needs up to 2^{} jets (polarisation), more than the {MAX_RECIPE_JETS} supported; use a sampled estimator or fewer coordinates",
                q.len(),
                k - 1
            )));
        }
        if !self.recipes.contains_key(q.as_slice()) {
            recipe(q, &mut self.recipes);
        }
        let PlanBuilder {
            plan,
            heads,
            chain,
            recipes,
            weights,
            spare_slots,
            vars,
            q,
            map,
            slots,
            ..
        } = self;
        let r = recipes.get(q.as_slice()).and_then(|r| r.as_ref()).ok_or_else(|| {
            OperatorError::Invalid(format!(
                "no exact jet recipe for d{coords:?} within jet order {MAX_PLAN_ORDER}"
            ))
        })?;
        map.clear();
        for (jet_slots, order) in &r.jets {
            slots.clear();
            slots.extend(jet_slots.iter().map(|(j, dir)| {
                let dir = match dir.as_slice() {
                    [(v, 1)] => ProbeDirection::Coord(vars[*v]),
                    _ => ProbeDirection::Sparse(dir.iter().map(|&(v, c)| (vars[v], c)).collect()),
                };
                (*j, dir)
            }));
            slots.sort();
            map.push(probe_index(plan, heads, chain, spare_slots, slots, *order));
        }
        for &(jet, n, w) in &r.readout {
            *weights.entry((map[jet], n)).or_insert(0.0) += coeff * w;
        }
        Ok(())
    }

    /// Adds `coeff · D^order u[w, …, w]` for a dense direction `w`.
    pub fn add_directional(&mut self, coeff: f64, order: usize, w: &[f64]) {
        self.plan.directions.push(w.to_vec());
        let dir = ProbeDirection::Dense(self.plan.directions.len() - 1);
        let p = self.probe(&[(1, dir)], order);
        self.read(p, order, coeff);
    }

    /// Finishes the plan (read-outs merged, zero weights dropped).
    pub fn finish(mut self) -> ProbePlan {
        self.take_plan()
    }

    /// Finishes the plan like [`PlanBuilder::finish`] and leaves the builder empty, ready for the
    /// next plan (its recipes and buffers kept; see [`PlanBuilder::reset`]).
    pub fn take_plan(&mut self) -> ProbePlan {
        if self.value_weight != 0.0 {
            let p = if self.plan.probes.is_empty() {
                self.probe(&[], 1)
            } else {
                0
            };
            self.read(p, 0, self.value_weight);
        }
        let mut plan = std::mem::take(&mut self.plan);
        plan.readout.extend(
            self.weights
                .drain()
                .filter(|(_, w)| *w != 0.0)
                .map(|((probe, n), weight)| Readout { probe, n, weight }),
        );
        plan.readout.sort_unstable_by_key(|r| (r.probe, r.n));
        self.reset(ProbePlan::default());
        plan
    }
}

impl ProbePlan {
    /// The exact plan of `op` in dimension `dim` (families expanded: `O(d)` jets for a Laplacian,
    /// `O(d²)` for a biharmonic).
    pub fn exact(op: &Operator, dim: usize) -> Result<ProbePlan, OperatorError> {
        op.validate(dim)?;
        let size = op.exact_terms(dim);
        if size > MAX_EXACT_TERMS {
            return Err(OperatorError::Invalid(format!(
                "the exact plan of this operator in dimension {dim} has about {size} terms (limit {MAX_EXACT_TERMS}); use a sparse or dense estimator"
            )));
        }
        let (terms, directional) = op.expand(dim);
        let mut b = PlanBuilder::new();
        for t in &terms {
            b.add_partial(t.coeff, &t.index)?;
        }
        for f in &directional {
            if let Family::Directional {
                coeff,
                order,
                directions,
            } = f
            {
                for w in directions {
                    b.add_directional(*coeff, *order, w);
                }
            }
        }
        Ok(b.finish())
    }

    /// Highest jet order among the probes.
    pub fn max_order(&self) -> usize {
        self.probes.iter().map(|p| p.order).max().unwrap_or(0)
    }
}

impl fmt::Display for ProbePlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOW: usize = 12;
        writeln!(
            f,
            "{} jet(s), highest order {}; {} read-out term(s)",
            self.probes.len(),
            self.max_order(),
            self.readout.len()
        )?;
        for (i, p) in self.probes.iter().enumerate().take(SHOW) {
            let slots: Vec<String> = p
                .slots
                .iter()
                .map(|(k, d)| match d {
                    ProbeDirection::Coord(c) => format!("v{k} = e{c}"),
                    ProbeDirection::Dense(w) => format!("v{k} = w{w}"),
                    ProbeDirection::Sparse(e) => {
                        let parts: Vec<String> = e.iter().map(|(i, c)| format!("{c:+}·e{i}")).collect();
                        format!("v{k} = {}", parts.join(" "))
                    }
                })
                .collect();
            let slots = if slots.is_empty() {
                "all tangents zero".to_string()
            } else {
                format!("{}, other slots 0", slots.join(", "))
            };
            writeln!(f, "  jet #{i}: {}-jet, {slots}", p.order)?;
        }
        if self.probes.len() > SHOW {
            writeln!(f, "  ... {} more jet(s)", self.probes.len() - SHOW)?;
        }
        let terms: Vec<String> = self
            .readout
            .iter()
            .take(SHOW)
            .map(|r| format!("{:+}·y{}[#{}]", r.weight, r.n, r.probe))
            .collect();
        write!(f, "L u = {}", terms.join(" "))?;
        if self.readout.len() > SHOW {
            write!(f, " ... ({} more)", self.readout.len() - SHOW)?;
        }
        writeln!(f)
    }
}

/// Several linear quantities read off one shared set of jets: quantity `q` is
/// `Σ weight · y_n(probe)` over `quantities[q]` (derivative convention). Built by merging
/// [`ProbePlan`]s and letting one jet serve every lower-order partial it already contains (the
/// gPINN 7-jet `v₂ = e_i, v₃ = e_j` gives `u_j = y₃`, `u_ii = y₄/3` and `u_iij = y₇/105`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MultiPlan {
    /// The shared jets.
    pub probes: Vec<Probe>,
    /// Dense directions referenced by [`ProbeDirection::Dense`].
    pub directions: Vec<Vec<f64>>,
    /// The read-outs of each quantity.
    pub quantities: Vec<Vec<Readout>>,
}

impl MultiPlan {
    /// Merges `plans` (one quantity each): identical jets are pushed once, and a pure jet
    /// `v₁ = e_c` is dropped when another jet carries `e_c` in a slot `j` whose output `y_{nj}`
    /// is a pure multiple of `∂_c^n u` (no other slot pattern reaches order `nj`; spec §4).
    pub fn new(plans: Vec<ProbePlan>) -> MultiPlan {
        let mut out = MultiPlan::default();
        let mut index: HashMap<Vec<(usize, ProbeDirection)>, usize> = HashMap::new();
        for plan in plans {
            let offset = out.directions.len();
            out.directions.extend(plan.directions);
            let map: Vec<usize> = plan
                .probes
                .iter()
                .map(|p| {
                    let slots: Vec<(usize, ProbeDirection)> = p
                        .slots
                        .iter()
                        .map(|(k, d)| match d {
                            ProbeDirection::Dense(w) => (*k, ProbeDirection::Dense(w + offset)),
                            other => (*k, other.clone()),
                        })
                        .collect();
                    match index.get(&slots) {
                        Some(&i) => {
                            out.probes[i].order = out.probes[i].order.max(p.order);
                            i
                        }
                        None => {
                            out.probes.push(Probe {
                                order: p.order,
                                slots: slots.clone(),
                            });
                            index.insert(slots, out.probes.len() - 1);
                            out.probes.len() - 1
                        }
                    }
                })
                .collect();
            out.quantities.push(
                plan.readout
                    .iter()
                    .map(|r| Readout {
                        probe: map[r.probe],
                        n: r.n,
                        weight: r.weight,
                    })
                    .collect(),
            );
        }
        out.share_jets();
        out
    }

    /// Where `weight·y_n` of the pure probe `p` can be read from another probe instead.
    fn host(&self, p: usize, n: usize) -> Option<(usize, usize, f64)> {
        let c = match self.probes[p].slots.as_slice() {
            [] => None,
            [(1, ProbeDirection::Coord(c))] => Some(*c),
            _ => return None,
        };
        let read = |h: usize| self.quantities.iter().flatten().any(|r| r.probe == h);
        (0..self.probes.len()).filter(|&h| h != p && read(h)).find_map(|h| {
            let host = &self.probes[h];
            if n == 0 {
                return Some((h, 0, 1.0));
            }
            let mut orders = Vec::with_capacity(host.slots.len());
            let mut at = None;
            let mut coords = Vec::with_capacity(host.slots.len());
            for (t, (j, dir)) in host.slots.iter().enumerate() {
                let ProbeDirection::Coord(cc) = dir else {
                    return None;
                };
                coords.push(*cc);
                orders.push(*j);
                if Some(*cc) == c {
                    at = Some(t);
                }
            }
            coords.sort_unstable();
            coords.dedup();
            let t = at?;
            let k = n * orders[t];
            if coords.len() != orders.len() || k > host.order {
                return None;
            }
            let reps = representations(&orders, k);
            let mut want = vec![0; orders.len()];
            want[t] = n;
            (reps == [want.clone()]).then(|| (h, k, 1.0 / kappa(&orders, &want, k)))
        })
    }

    /// Moves read-outs of pure jets onto jets that already contain them and drops unused jets.
    fn share_jets(&mut self) {
        for p in 0..self.probes.len() {
            let reads: Vec<usize> = self
                .quantities
                .iter()
                .flatten()
                .filter(|r| r.probe == p)
                .map(|r| r.n)
                .collect();
            if reads.is_empty() {
                continue;
            }
            let hosts: Option<Vec<(usize, usize, usize, f64)>> = reads
                .iter()
                .map(|&n| self.host(p, n).map(|(h, k, s)| (n, h, k, s)))
                .collect();
            let Some(hosts) = hosts else {
                continue;
            };
            for q in &mut self.quantities {
                for r in q.iter_mut().filter(|r| r.probe == p) {
                    let &(_, h, k, s) = hosts.iter().find(|x| x.0 == r.n).expect("every read has a host");
                    *r = Readout {
                        probe: h,
                        n: k,
                        weight: r.weight * s,
                    };
                }
            }
        }
        // drop unread jets and renumber
        let mut used = vec![false; self.probes.len()];
        self.quantities.iter().flatten().for_each(|r| used[r.probe] = true);
        if used.iter().all(|&u| u) {
            return;
        }
        let mut renumber = vec![usize::MAX; self.probes.len()];
        let mut kept = Vec::new();
        for (i, p) in std::mem::take(&mut self.probes).into_iter().enumerate() {
            if used[i] {
                renumber[i] = kept.len();
                kept.push(p);
            }
        }
        self.probes = kept;
        self.quantities
            .iter_mut()
            .flatten()
            .for_each(|r| r.probe = renumber[r.probe]);
    }

    /// Highest jet order among the probes.
    pub fn max_order(&self) -> usize {
        self.probes.iter().map(|p| p.order).max().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpinn_partial_uses_one_7_jet() {
        // u_iij with i ≠ j: the spec's 7-jet v2 = e_i, v3 = e_j, y7 = 105 u_iij, no correction
        let mut b = PlanBuilder::new();
        b.add_partial(1.0, &[0, 0, 1]).unwrap();
        let plan = b.finish();
        assert_eq!(plan.probes.len(), 1);
        assert_eq!(
            plan.probes[0],
            Probe {
                order: 7,
                slots: vec![(2, ProbeDirection::Coord(0)), (3, ProbeDirection::Coord(1))]
            }
        );
        assert_eq!(
            plan.readout,
            vec![Readout {
                probe: 0,
                n: 7,
                weight: 1.0 / 105.0
            }]
        );
    }

    #[test]
    fn pure_partials_share_one_jet() {
        let mut b = PlanBuilder::new();
        b.add_partial(1.0, &[2, 2]).unwrap();
        b.add_partial(1.0, &[2, 2, 2, 2]).unwrap();
        b.add_partial(1.0, &[]).unwrap();
        let plan = b.finish();
        assert_eq!(plan.probes.len(), 1);
        assert_eq!(plan.probes[0].order, 4);
        assert_eq!(plan.readout.len(), 3);
    }

    #[test]
    fn gpinn_jets_serve_the_laplacian_and_the_gradient() {
        // Δ̂ from 2-jets along e_0, e_1; u_001 and u_110 and u_1, u_0: all from two 7-jets
        let plan = |f: &dyn Fn(&mut PlanBuilder)| {
            let mut b = PlanBuilder::new();
            f(&mut b);
            b.finish()
        };
        let lap = plan(&|b| {
            b.add_partial(5.0, &[0, 0]).unwrap();
            b.add_partial(5.0, &[1, 1]).unwrap();
        });
        let third = plan(&|b| b.add_partial(1.0, &[0, 0, 1]).unwrap());
        let third2 = plan(&|b| b.add_partial(1.0, &[1, 1, 0]).unwrap());
        let grad = plan(&|b| b.add_partial(1.0, &[1]).unwrap());
        let value = plan(&|b| b.add_partial(1.0, &[]).unwrap());
        let m = MultiPlan::new(vec![lap, third, third2, grad, value]);
        assert_eq!(m.probes.len(), 2, "{m:?}");
        assert!(m.probes.iter().all(|p| p.order == 7));
        // u_ii = y4/3 with weight 5
        for r in &m.quantities[0] {
            assert_eq!(r.n, 4);
            assert!((r.weight - 5.0 / 3.0).abs() < 1e-15);
        }
        // u_1 from the jet with v3 = e_1
        let r = &m.quantities[3][0];
        assert_eq!(m.probes[r.probe].slots[1], (3, ProbeDirection::Coord(1)));
        assert_eq!((r.n, r.weight), (3, 1.0));
        assert_eq!(m.quantities[4][0].n, 0);
    }

    #[test]
    fn contamination_check() {
        // slots (1,2) for q = (1,1): k = 3, unique
        assert!(unique_full_support(&[1, 2], 3));
        // slots (1,2) for q = (2,1): k = 4 = 1·2+2·1, also 1·0+2·2 (partial support) — full support unique
        assert!(unique_full_support(&[1, 2], 4));
        // slots (1,2) for q = (1,2): k = 5 = 1·1+2·2 = 1·3+2·1: two full-support representations
        assert!(!unique_full_support(&[1, 2], 5));
    }
}
