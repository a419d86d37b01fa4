//! The three protocol variants of RFC 9497 §3.3: clients that blind and
//! finalize, servers that evaluate. Each protocol step returns the state the
//! caller keeps and the message it sends, as `{ state, message }`.

use curve25519_dalek::ristretto::RistrettoBasepointTable;
use curve25519_dalek::traits::IsIdentity;
use curve25519_dalek::{RistrettoPoint, Scalar};
use rand_core::CryptoRng;
use subtle::{Choice, ConstantTimeEq};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::dleq::{Elements, generate_proof, verify_proof_vartime};
use crate::error::{Error, Result};
use crate::group::{BlindedElement, EvaluatedElement, Proof, PublicKey};
use crate::hash::{hash_to_group, hash_to_scalar_default, sha512};
use crate::key::{KeyPair, SecretKey, random_nonzero_scalar};
use crate::suite::{MAX_INPUT_LEN, Mode, OUTPUT_LEN, len2};

/// The PRF output for one input: 64 bytes that only someone who holds the
/// input and talked to the server (or holds the key) can compute.
///
/// Treat it as a secret: it opens the input's record. Wiped on drop,
/// compared in constant time, redacted in `Debug`.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Output(pub(crate) [u8; OUTPUT_LEN]);

impl Output {
    /// The 64 output bytes.
    pub fn as_bytes(&self) -> &[u8; OUTPUT_LEN] {
        &self.0
    }

    /// Rebuild an output from bytes kept earlier (for example a client cache).
    pub fn from_bytes(bytes: [u8; OUTPUT_LEN]) -> Self {
        Self(bytes)
    }
}

impl ConstantTimeEq for Output {
    fn ct_eq(&self, other: &Self) -> Choice {
        self.0.ct_eq(&other.0)
    }
}

impl PartialEq for Output {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other).into()
    }
}

impl Eq for Output {}

impl core::fmt::Debug for Output {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Output(<redacted>)")
    }
}

/// What a blinding step returns: the `state` the client keeps until the
/// response arrives, and the `message` it sends to the server.
#[derive(Debug)]
pub struct BlindResult<S> {
    /// Client state to keep (holds the secret blind).
    pub state: S,
    /// The blinded element to send.
    pub message: BlindedElement,
}

/// What a verifiable batch evaluation returns: one evaluated element per
/// blinded element, in order, and one proof covering all of them.
#[derive(Debug, Clone)]
pub struct BatchEvaluation {
    /// The evaluated elements, in request order.
    pub messages: Vec<EvaluatedElement>,
    /// The batched DLEQ proof.
    pub proof: Proof,
}

fn check_input(input: &[u8]) -> Result<()> {
    if input.len() > MAX_INPUT_LEN {
        return Err(Error::InputTooLong { max: MAX_INPUT_LEN });
    }
    Ok(())
}

/// RFC 9497 `HashToGroup(input)` of `mode`, encoded: the point a client
/// blinds. Public for benchmarks and interoperability tests.
pub fn hash_to_group_encoded(mode: Mode, input: &[u8]) -> Result<[u8; 32]> {
    Ok(input_element(mode, input)?.compress().to_bytes())
}

/// `HashToGroup(input)`, rejecting the identity (`InvalidInputError`).
fn input_element(mode: Mode, input: &[u8]) -> Result<RistrettoPoint> {
    check_input(input)?;
    let p = hash_to_group(&[input], &mode.context_string());
    if p.is_identity() {
        return Err(Error::InvalidInput);
    }
    Ok(p)
}

/// [`input_element`] of every input, or the first error.
fn input_elements(mode: Mode, inputs: &[&[u8]]) -> Result<Vec<RistrettoPoint>> {
    inputs
        .iter()
        .map(|input| input_element(mode, input))
        .collect()
}

/// `compress(s[i] · P[i])` for every `i`, as `(s[i]/2) · P[i]` doubled
/// inside one batched compression: one shared field inversion instead of
/// one per point. Returns the products too.
fn mul_compress_batch(
    pairs: impl ExactSizeIterator<Item = (Scalar, RistrettoPoint)>,
) -> Vec<(RistrettoPoint, [u8; 32])> {
    let half = Scalar::from(2u8).invert();
    let mut halves: Vec<RistrettoPoint> = pairs
        .map(|(mut s, p)| {
            let mut h = s * half;
            let product = h * p;
            s.zeroize();
            h.zeroize();
            product
        })
        .collect();
    let out = RistrettoPoint::double_and_compress_batch(&halves)
        .into_iter()
        .zip(&halves)
        .map(|(c, h)| (h + h, c.to_bytes()))
        .collect();
    // Half an unblinded element is as good as the element: wipe them.
    halves.zeroize();
    out
}

/// The `Finalize` hash: `Hash(len || input [|| len || info] || len || element || "Finalize")`.
fn finalize_hash(input: &[u8], info: Option<&[u8]>, unblinded: &[u8; 32]) -> Output {
    let out = match info {
        None => sha512(&[
            &len2(input),
            input,
            &len2(unblinded),
            unblinded,
            b"Finalize",
        ]),
        Some(info) => sha512(&[
            &len2(input),
            input,
            &len2(info),
            info,
            &len2(unblinded),
            unblinded,
            b"Finalize",
        ]),
    };
    Output(out)
}

/// The secret blind of one input, wiped on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
struct Blind(Scalar);

fn blind_input(mode: Mode, input: &[u8], blind: Scalar) -> Result<(Blind, BlindedElement)> {
    let p = input_element(mode, input)?;
    Ok((Blind(blind), BlindedElement::from_point(blind * p)))
}

fn check_lengths(inputs: usize, states: usize, evaluated: usize) -> Result<()> {
    if inputs != states || states != evaluated {
        return Err(Error::Batch(
            "inputs, client states and evaluated elements must have the same length",
        ));
    }
    Ok(())
}

/// Unblind `blind^-1 * evaluated` for a batch and compress, with one
/// shared scalar inversion and one shared field inversion.
fn unblind_batch<'a>(
    blinds: impl Iterator<Item = &'a Blind>,
    evaluated: &[EvaluatedElement],
) -> Vec<[u8; 32]> {
    let mut inverses: Vec<Scalar> = blinds.map(|b| b.0).collect();
    // Blinds are nonzero by construction, so batch inversion is defined.
    Scalar::invert_batch_alloc(&mut inverses);
    let out = mul_compress_batch(
        inverses
            .iter()
            .zip(evaluated)
            .map(|(inv, z)| (*inv, z.point)),
    )
    .into_iter()
    .map(|(_, bytes)| bytes)
    .collect();
    inverses.zeroize();
    out
}

// ---------------------------------------------------------------- OPRF ---

/// Client of the base OPRF mode (no proof).
#[derive(Clone, ZeroizeOnDrop)]
pub struct OprfClient {
    blind: Blind,
}

impl OprfClient {
    /// Blind `input` with a fresh random blind.
    pub fn blind<R: CryptoRng + ?Sized>(input: &[u8], rng: &mut R) -> Result<BlindResult<Self>> {
        Self::blind_with(input, random_nonzero_scalar(rng))
    }

    pub(crate) fn blind_with(input: &[u8], blind: Scalar) -> Result<BlindResult<Self>> {
        let (blind, message) = blind_input(Mode::Oprf, input, blind)?;
        Ok(BlindResult {
            state: Self { blind },
            message,
        })
    }

    /// Unblind the server's answer and hash it into the PRF output.
    pub fn finalize(&self, input: &[u8], evaluated: &EvaluatedElement) -> Result<Output> {
        check_input(input)?;
        let n = self.blind.0.invert() * evaluated.point;
        Ok(finalize_hash(input, None, &n.compress().to_bytes()))
    }
}

impl core::fmt::Debug for OprfClient {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("OprfClient(<redacted>)")
    }
}

/// Server of the base OPRF mode.
#[derive(Clone, Debug)]
pub struct OprfServer {
    key: SecretKey,
}

impl OprfServer {
    /// A server holding `key`.
    pub fn new(key: SecretKey) -> Self {
        Self { key }
    }

    /// `BlindEvaluate`: `skS * blinded`.
    pub fn blind_evaluate(&self, blinded: &BlindedElement) -> EvaluatedElement {
        EvaluatedElement::from_point(self.key.0 * blinded.point)
    }

    /// `Evaluate`: the PRF output for `input`, computed directly with the key.
    pub fn evaluate(&self, input: &[u8]) -> Result<Output> {
        let p = input_element(Mode::Oprf, input)?;
        Ok(finalize_hash(
            input,
            None,
            &(self.key.0 * p).compress().to_bytes(),
        ))
    }
}

// --------------------------------------------------------------- VOPRF ---

/// How a VOPRF input was blinded, which decides how it is unblinded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Blinding {
    /// RFC 9497 `Blind`: `blinded = r·P`, unblinded as `r⁻¹·Z`.
    Multiplicative,
    /// `blinded = P + r·G`, unblinded as `Z − r·pkS`.
    Additive,
}

/// Below this many additively blinded elements in one batch, multiplying
/// by the public key directly is cheaper than building its table.
const PUBLIC_KEY_TABLE_MIN_BATCH: usize = 4;

/// Client of the verifiable mode: it checks the server's proof against the
/// server's public key before it trusts any output.
#[derive(Clone, ZeroizeOnDrop)]
pub struct VoprfClient {
    blind: Blind,
    #[zeroize(skip)]
    blinding: Blinding,
    #[zeroize(skip)]
    blinded: BlindedElement,
}

impl VoprfClient {
    /// Blind `input` with a fresh random blind.
    pub fn blind<R: CryptoRng + ?Sized>(input: &[u8], rng: &mut R) -> Result<BlindResult<Self>> {
        Self::blind_with(input, random_nonzero_scalar(rng))
    }

    pub(crate) fn blind_with(input: &[u8], blind: Scalar) -> Result<BlindResult<Self>> {
        let (blind, message) = blind_input(Mode::Voprf, input, blind)?;
        Ok(BlindResult {
            state: Self {
                blind,
                blinding: Blinding::Multiplicative,
                blinded: message,
            },
            message,
        })
    }

    /// Blind many inputs at once: the same result as [`VoprfClient::blind`]
    /// per input, with one shared field inversion for all compressions.
    pub fn blind_batch<R: CryptoRng + ?Sized>(
        inputs: &[&[u8]],
        rng: &mut R,
    ) -> Result<Vec<BlindResult<Self>>> {
        // Hash every input first: nothing secret exists yet if one fails.
        let points = input_elements(Mode::Voprf, inputs)?;
        let blinds: Vec<Blind> = points
            .iter()
            .map(|_| Blind(random_nonzero_scalar(rng)))
            .collect();
        let blinded = mul_compress_batch(blinds.iter().zip(&points).map(|(b, p)| (b.0, *p)));
        Ok(blinds
            .into_iter()
            .zip(blinded)
            .map(|(blind, (point, bytes))| {
                let message = BlindedElement { point, bytes };
                BlindResult {
                    state: Self {
                        blind,
                        blinding: Blinding::Multiplicative,
                        blinded: message,
                    },
                    message,
                }
            })
            .collect())
    }

    /// Blind many inputs *additively*: `blinded = P + r·G` instead of the
    /// RFC's `r·P`, unblinded by [`VoprfClient::batch_finalize`] as
    /// `Z − r·pkS`. Both multiplications have a fixed base (the generator
    /// now, the server's public key at finalization, through precomputed
    /// tables), so a contact costs about two thirds of a variable-base
    /// multiplication less than with [`VoprfClient::blind_batch`].
    ///
    /// Nothing else changes: `P + r·G` with a uniformly random `r` is a
    /// uniformly random group element, exactly as `r·P` is, so the server
    /// learns nothing it would not learn from RFC 9497 blinding and cannot
    /// tell the two apart; the outputs are exactly the RFC 9497 outputs.
    /// It is sound only because this mode verifies the proof first: the
    /// proof shows `Z = k·blinded` for the `k` of `pkS = k·G`, so
    /// `Z − r·pkS = k·P`. (Base-mode OPRF has no such check, which is why
    /// only [`VoprfClient`] offers this.)
    pub fn blind_batch_additive<R: CryptoRng + ?Sized>(
        inputs: &[&[u8]],
        rng: &mut R,
    ) -> Result<Vec<BlindResult<Self>>> {
        // Hash every input first: nothing secret exists yet if one fails.
        // `P` reveals the number to a dictionary search, and so does `r·G`
        // next to the blinded element: both are wiped after use.
        let mut points = input_elements(Mode::Voprf, inputs)?;
        let out = points
            .iter()
            .map(|p| {
                let (blind, mut point) = loop {
                    let blind = Blind(random_nonzero_scalar(rng));
                    let mut mask = RistrettoPoint::mul_base(&blind.0);
                    let point = p + mask;
                    mask.zeroize();
                    // `r = log(−P)` happens with probability 2^-252; the
                    // server would refuse the identity, so draw again.
                    if !point.is_identity() {
                        break (blind, point);
                    }
                };
                let message = BlindedElement::from_point(point);
                point.zeroize();
                BlindResult {
                    state: Self {
                        blind,
                        blinding: Blinding::Additive,
                        blinded: message,
                    },
                    message,
                }
            })
            .collect();
        points.zeroize();
        Ok(out)
    }

    /// The blinded element this state was created with.
    pub fn blinded_element(&self) -> &BlindedElement {
        &self.blinded
    }

    /// Verify only the batch proof against `public_key` (what
    /// [`VoprfClient::batch_finalize`] does first), in variable time.
    pub fn verify_batch_vartime(
        states: &[Self],
        evaluated: &[EvaluatedElement],
        proof: &Proof,
        public_key: &PublicKey,
    ) -> Result<()> {
        verify_batch(
            Mode::Voprf,
            public_key,
            states.iter().map(|s| &s.blinded),
            evaluated,
            proof,
        )
    }

    /// Verify the batch proof against `public_key`, then unblind and hash
    /// every evaluated element. `inputs[i]`, `states[i]` and `evaluated[i]`
    /// belong together. Nothing is returned unless the proof verifies.
    pub fn batch_finalize(
        inputs: &[&[u8]],
        states: &[Self],
        evaluated: &[EvaluatedElement],
        proof: &Proof,
        public_key: &PublicKey,
    ) -> Result<Vec<Output>> {
        check_lengths(inputs.len(), states.len(), evaluated.len())?;
        Self::verify_batch_vartime(states, evaluated, proof, public_key)?;
        for input in inputs {
            check_input(input)?;
        }
        let mut unblinded = Self::unblind(states, evaluated, public_key);
        let outputs = inputs
            .iter()
            .zip(&unblinded)
            .map(|(input, n)| finalize_hash(input, None, n))
            .collect();
        unblinded.zeroize();
        Ok(outputs)
    }

    /// Unblind every state by its own blinding, in input order.
    fn unblind(
        states: &[Self],
        evaluated: &[EvaluatedElement],
        public_key: &PublicKey,
    ) -> Vec<[u8; 32]> {
        let is = |how| move |(s, _): &(&Self, &EvaluatedElement)| s.blinding == how;
        let pairs = || states.iter().zip(evaluated);
        let mut multiplicative = unblind_batch(
            pairs()
                .filter(is(Blinding::Multiplicative))
                .map(|(s, _)| &s.blind),
            &pairs()
                .filter(is(Blinding::Multiplicative))
                .map(|(_, z)| *z)
                .collect::<Vec<_>>(),
        )
        .into_iter();
        let additive = pairs().filter(is(Blinding::Additive)).count();
        let table = (additive >= PUBLIC_KEY_TABLE_MIN_BATCH)
            .then(|| RistrettoBasepointTable::create(&public_key.point));
        pairs()
            .map(|(s, z)| match s.blinding {
                Blinding::Multiplicative => multiplicative.next().expect("one per state"),
                Blinding::Additive => {
                    let mut mask = match &table {
                        Some(t) => &s.blind.0 * t,
                        None => s.blind.0 * public_key.point,
                    };
                    let mut n = z.point - mask;
                    let bytes = n.compress().to_bytes();
                    mask.zeroize();
                    n.zeroize();
                    bytes
                }
            })
            .collect()
    }
}

impl core::fmt::Debug for VoprfClient {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("VoprfClient(<redacted>)")
    }
}

/// Verify `proof` that `evaluated[i] = k * blinded[i]` where `public_key = k * G`.
/// In variable time: all of these values are public.
fn verify_batch<'a>(
    mode: Mode,
    public_key: &PublicKey,
    blinded: impl Iterator<Item = &'a BlindedElement>,
    evaluated: &[EvaluatedElement],
    proof: &Proof,
) -> Result<()> {
    verify_proof_vartime(
        public_key,
        &Elements::collect(blinded.map(|b| (&b.point, &b.bytes))),
        &Elements::collect(evaluated.iter().map(|e| (&e.point, &e.bytes))),
        proof,
        &mode.context_string(),
    )
}

/// Server of the verifiable mode.
#[derive(Clone, Debug)]
pub struct VoprfServer {
    key: KeyPair,
}

impl VoprfServer {
    /// A server holding `key`.
    pub fn new(key: KeyPair) -> Self {
        Self { key }
    }

    /// The public key clients verify proofs against.
    pub fn public_key(&self) -> &PublicKey {
        self.key.public()
    }

    /// `skS * blinded[i]` for each element, without a proof. Independent per
    /// element, so a caller may split a batch across threads and then call
    /// [`VoprfServer::prove_batch`] once over the whole batch.
    pub fn evaluate_elements(&self, blinded: &[BlindedElement]) -> Vec<EvaluatedElement> {
        let k = &self.key.secret().0;
        mul_compress_batch(blinded.iter().map(|b| (*k, b.point)))
            .into_iter()
            .map(|(point, bytes)| EvaluatedElement { point, bytes })
            .collect()
    }

    /// The batched DLEQ proof over a whole request.
    pub fn prove_batch<R: CryptoRng + ?Sized>(
        &self,
        blinded: &[BlindedElement],
        evaluated: &[EvaluatedElement],
        rng: &mut R,
    ) -> Result<Proof> {
        self.prove_batch_with(blinded, evaluated, &random_nonzero_scalar(rng))
    }

    pub(crate) fn prove_batch_with(
        &self,
        blinded: &[BlindedElement],
        evaluated: &[EvaluatedElement],
        r: &Scalar,
    ) -> Result<Proof> {
        let d_bytes: Vec<_> = evaluated.iter().map(|e| e.bytes).collect();
        generate_proof(
            &self.key.secret().0,
            &self.key.public().bytes,
            &Elements::collect(blinded.iter().map(|b| (&b.point, &b.bytes))),
            &d_bytes,
            r,
            &Mode::Voprf.context_string(),
        )
    }

    /// `BlindEvaluateBatch`: evaluate every element and prove the batch.
    pub fn blind_evaluate_batch<R: CryptoRng + ?Sized>(
        &self,
        blinded: &[BlindedElement],
        rng: &mut R,
    ) -> Result<BatchEvaluation> {
        let messages = self.evaluate_elements(blinded);
        let proof = self.prove_batch(blinded, &messages, rng)?;
        Ok(BatchEvaluation { messages, proof })
    }

    /// `Evaluate`: the PRF output for `input`, computed directly with the key.
    pub fn evaluate(&self, input: &[u8]) -> Result<Output> {
        let p = input_element(Mode::Voprf, input)?;
        Ok(finalize_hash(
            input,
            None,
            &(self.key.secret().0 * p).compress().to_bytes(),
        ))
    }
}

// --------------------------------------------------------------- POPRF ---

fn framed_info_scalar(info: &[u8]) -> Result<Scalar> {
    check_input(info)?;
    Ok(hash_to_scalar_default(
        &[b"Info", &len2(info), info],
        &Mode::Poprf.context_string(),
    ))
}

/// Client of the partially-oblivious mode: the public `info` is bound into
/// the output and into the key the proof is checked against.
#[derive(Clone, ZeroizeOnDrop)]
pub struct PoprfClient {
    blind: Blind,
    #[zeroize(skip)]
    blinded: BlindedElement,
    #[zeroize(skip)]
    tweaked_key: PublicKey,
}

impl PoprfClient {
    /// Blind `input` for evaluation under `info` by the server with `public_key`.
    pub fn blind<R: CryptoRng + ?Sized>(
        input: &[u8],
        info: &[u8],
        public_key: &PublicKey,
        rng: &mut R,
    ) -> Result<BlindResult<Self>> {
        Self::blind_with(input, info, public_key, random_nonzero_scalar(rng))
    }

    pub(crate) fn blind_with(
        input: &[u8],
        info: &[u8],
        public_key: &PublicKey,
        blind: Scalar,
    ) -> Result<BlindResult<Self>> {
        let m = framed_info_scalar(info)?;
        let tweaked = RistrettoPoint::mul_base(&m) + public_key.point;
        if tweaked.is_identity() {
            return Err(Error::InvalidInput);
        }
        let (blind, message) = blind_input(Mode::Poprf, input, blind)?;
        Ok(BlindResult {
            state: Self {
                blind,
                blinded: message,
                tweaked_key: PublicKey::from_point(tweaked),
            },
            message,
        })
    }

    /// Verify the batch proof, then unblind and hash every evaluated element.
    pub fn batch_finalize(
        inputs: &[&[u8]],
        info: &[u8],
        states: &[Self],
        evaluated: &[EvaluatedElement],
        proof: &Proof,
    ) -> Result<Vec<Output>> {
        check_lengths(inputs.len(), states.len(), evaluated.len())?;
        let first = states
            .first()
            .ok_or(Error::Batch("a proof needs at least one element"))?;
        if states.iter().any(|s| s.tweaked_key != first.tweaked_key) {
            return Err(Error::Batch(
                "all states of a batch must share one public key and info",
            ));
        }
        check_input(info)?;
        // The roles of C and D are swapped in POPRF: blinded = t * evaluated.
        verify_proof_vartime(
            &first.tweaked_key,
            &Elements::collect(evaluated.iter().map(|e| (&e.point, &e.bytes))),
            &Elements::collect(states.iter().map(|s| (&s.blinded.point, &s.blinded.bytes))),
            proof,
            &Mode::Poprf.context_string(),
        )?;
        for input in inputs {
            check_input(input)?;
        }
        let unblinded = unblind_batch(states.iter().map(|s| &s.blind), evaluated);
        Ok(inputs
            .iter()
            .zip(&unblinded)
            .map(|(input, n)| finalize_hash(input, Some(info), n))
            .collect())
    }
}

impl core::fmt::Debug for PoprfClient {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("PoprfClient(<redacted>)")
    }
}

/// Server of the partially-oblivious mode.
#[derive(Clone, Debug)]
pub struct PoprfServer {
    key: KeyPair,
}

impl PoprfServer {
    /// A server holding `key`.
    pub fn new(key: KeyPair) -> Self {
        Self { key }
    }

    /// The public key (before tweaking with `info`).
    pub fn public_key(&self) -> &PublicKey {
        self.key.public()
    }

    /// `t = skS + HashToScalar(framedInfo)`, which must be invertible.
    fn tweak(&self, info: &[u8]) -> Result<Scalar> {
        let t = self.key.secret().0 + framed_info_scalar(info)?;
        if t == Scalar::ZERO {
            return Err(Error::Inverse);
        }
        Ok(t)
    }

    /// `BlindEvaluateBatch` under `info`.
    pub fn blind_evaluate_batch<R: CryptoRng + ?Sized>(
        &self,
        blinded: &[BlindedElement],
        info: &[u8],
        rng: &mut R,
    ) -> Result<BatchEvaluation> {
        self.blind_evaluate_batch_with(blinded, info, &random_nonzero_scalar(rng))
    }

    pub(crate) fn blind_evaluate_batch_with(
        &self,
        blinded: &[BlindedElement],
        info: &[u8],
        r: &Scalar,
    ) -> Result<BatchEvaluation> {
        let mut t = self.tweak(info)?;
        let t_inv = t.invert();
        let messages: Vec<_> = blinded
            .iter()
            .map(|b| EvaluatedElement::from_point(t_inv * b.point))
            .collect();
        let tweaked_key = PublicKey::from_point(RistrettoPoint::mul_base(&t));
        let d_bytes: Vec<_> = blinded.iter().map(|b| b.bytes).collect();
        let proof = generate_proof(
            &t,
            &tweaked_key.bytes,
            &Elements::collect(messages.iter().map(|e| (&e.point, &e.bytes))),
            &d_bytes,
            r,
            &Mode::Poprf.context_string(),
        );
        t.zeroize();
        Ok(BatchEvaluation {
            messages,
            proof: proof?,
        })
    }

    /// `Evaluate` under `info`, computed directly with the key.
    pub fn evaluate(&self, input: &[u8], info: &[u8]) -> Result<Output> {
        let mut t = self.tweak(info)?;
        let p = input_element(Mode::Poprf, input)?;
        let out = finalize_hash(input, Some(info), &(t.invert() * p).compress().to_bytes());
        t.zeroize();
        Ok(out)
    }
}
