//! RFC 9497 Appendix A.1 test vectors for ristretto255-SHA512, all three
//! modes, loaded from the data file published with the specification.

use cds_core::dangerous;
use cds_core::{
    BlindedElement, EvaluatedElement, KeyPair, Mode, OprfClient, OprfServer, PoprfClient,
    PoprfServer, Proof, VoprfClient, VoprfServer,
};
use serde::Deserialize;

const VECTORS: &str = include_str!("rfc9497-ristretto255-sha512.json");

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Suite {
    identifier: String,
    mode: u8,
    seed: String,
    key_info: String,
    sk_sm: String,
    pk_sm: Option<String>,
    vectors: Vec<Vector>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Vector {
    batch: usize,
    blind: String,
    blinded_element: String,
    evaluation_element: String,
    input: String,
    output: String,
    info: Option<String>,
    proof: Option<ProofVector>,
}

#[derive(Deserialize)]
struct ProofVector {
    proof: String,
    r: String,
}

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).expect("vector hex")
}

fn unhex32(s: &str) -> [u8; 32] {
    unhex(s).try_into().expect("32 bytes")
}

/// Batched fields join their values with commas.
fn list(s: &str) -> Vec<Vec<u8>> {
    s.split(',').map(unhex).collect()
}

fn suites() -> Vec<Suite> {
    let suites: Vec<Suite> = serde_json::from_str(VECTORS).expect("vector file parses");
    assert!(suites.iter().all(|s| s.identifier == "ristretto255-SHA512"));
    suites
}

fn suite(mode: u8) -> Suite {
    suites()
        .into_iter()
        .find(|s| s.mode == mode)
        .expect("mode present")
}

fn derive(s: &Suite, mode: Mode) -> KeyPair {
    let kp = KeyPair::derive(mode, &unhex32(&s.seed), &unhex(&s.key_info)).expect("derives");
    assert_eq!(kp.secret().to_bytes().to_vec(), unhex(&s.sk_sm), "skSm");
    if let Some(pk) = &s.pk_sm {
        assert_eq!(kp.public().to_bytes().to_vec(), unhex(pk), "pkSm");
    }
    kp
}

fn packed<T>(items: &[T], bytes: impl Fn(&T) -> [u8; 32]) -> Vec<Vec<u8>> {
    items.iter().map(|i| bytes(i).to_vec()).collect()
}

#[test]
fn every_mode_has_vectors() {
    let modes: Vec<u8> = suites().iter().map(|s| s.mode).collect();
    assert_eq!(modes, vec![0, 1, 2]);
    assert!(suites().iter().all(|s| !s.vectors.is_empty()));
}

#[test]
fn oprf_mode_matches_rfc_vectors() {
    let s = suite(0);
    let kp = derive(&s, Mode::Oprf);
    let server = OprfServer::new(kp.secret().clone());
    for v in &s.vectors {
        assert_eq!(v.batch, 1);
        let input = unhex(&v.input);
        let blind = dangerous::oprf_blind(&input, &unhex32(&v.blind)).expect("blinds");
        assert_eq!(blind.message.to_bytes().to_vec(), unhex(&v.blinded_element));
        let evaluated = server.blind_evaluate(&blind.message);
        assert_eq!(evaluated.to_bytes().to_vec(), unhex(&v.evaluation_element));
        let wire = EvaluatedElement::from_slice(&unhex(&v.evaluation_element)).expect("canonical");
        let out = blind.state.finalize(&input, &wire).expect("finalizes");
        assert_eq!(out.as_bytes().to_vec(), unhex(&v.output));
        assert_eq!(server.evaluate(&input).expect("evaluates"), out);
    }
}

#[test]
fn voprf_mode_matches_rfc_vectors_including_batches() {
    let s = suite(1);
    let kp = derive(&s, Mode::Voprf);
    let server = VoprfServer::new(kp.clone());
    let mut saw_batch = false;
    for v in &s.vectors {
        let inputs = list(&v.input);
        let blinds = list(&v.blind);
        assert_eq!(inputs.len(), v.batch);
        saw_batch |= v.batch > 1;
        let (states, messages): (Vec<_>, Vec<_>) = inputs
            .iter()
            .zip(&blinds)
            .map(|(i, b)| {
                let r =
                    dangerous::voprf_blind(i, &b.clone().try_into().expect("32")).expect("blinds");
                (r.state, r.message)
            })
            .unzip();
        assert_eq!(
            packed(&messages, BlindedElement::to_bytes),
            list(&v.blinded_element)
        );
        let evaluated = server.evaluate_elements(&messages);
        assert_eq!(
            packed(&evaluated, EvaluatedElement::to_bytes),
            list(&v.evaluation_element)
        );
        let pv = v.proof.as_ref().expect("VOPRF vectors have proofs");
        let proof = dangerous::voprf_prove_batch(&server, &messages, &evaluated, &unhex32(&pv.r))
            .expect("proves");
        assert_eq!(proof.to_bytes().to_vec(), unhex(&pv.proof));
        let wire_proof = Proof::from_slice(&unhex(&pv.proof)).expect("canonical");
        let input_refs: Vec<&[u8]> = inputs.iter().map(Vec::as_slice).collect();
        let outputs =
            VoprfClient::batch_finalize(&input_refs, &states, &evaluated, &wire_proof, kp.public())
                .expect("proof verifies");
        let expected = list(&v.output);
        for ((out, want), input) in outputs.iter().zip(&expected).zip(&inputs) {
            assert_eq!(&out.as_bytes().to_vec(), want);
            assert_eq!(&server.evaluate(input).expect("evaluates"), out);
        }
    }
    assert!(saw_batch, "the vector file includes a batched VOPRF vector");
}

#[test]
fn poprf_mode_matches_rfc_vectors_including_batches() {
    let s = suite(2);
    let kp = derive(&s, Mode::Poprf);
    let server = PoprfServer::new(kp.clone());
    for v in &s.vectors {
        let info = unhex(v.info.as_ref().expect("POPRF vectors have info"));
        let inputs = list(&v.input);
        let blinds = list(&v.blind);
        let (states, messages): (Vec<_>, Vec<_>) = inputs
            .iter()
            .zip(&blinds)
            .map(|(i, b)| {
                let r = dangerous::poprf_blind(
                    i,
                    &info,
                    kp.public(),
                    &b.clone().try_into().expect("32"),
                )
                .expect("blinds");
                (r.state, r.message)
            })
            .unzip();
        assert_eq!(
            packed(&messages, BlindedElement::to_bytes),
            list(&v.blinded_element)
        );
        let pv = v.proof.as_ref().expect("POPRF vectors have proofs");
        let eval =
            dangerous::poprf_blind_evaluate_batch(&server, &messages, &info, &unhex32(&pv.r))
                .expect("evaluates");
        assert_eq!(
            packed(&eval.messages, EvaluatedElement::to_bytes),
            list(&v.evaluation_element)
        );
        assert_eq!(eval.proof.to_bytes().to_vec(), unhex(&pv.proof));
        let input_refs: Vec<&[u8]> = inputs.iter().map(Vec::as_slice).collect();
        let outputs =
            PoprfClient::batch_finalize(&input_refs, &info, &states, &eval.messages, &eval.proof)
                .expect("proof verifies");
        for ((out, want), input) in outputs.iter().zip(list(&v.output)).zip(&inputs) {
            assert_eq!(out.as_bytes().to_vec(), want);
            assert_eq!(&server.evaluate(input, &info).expect("evaluates"), out);
        }
    }
}

#[test]
fn voprf_proof_from_another_key_is_refused() {
    let s = suite(1);
    let kp = derive(&s, Mode::Voprf);
    let other = KeyPair::derive(Mode::Voprf, &[9u8; 32], b"other").expect("derives");
    let server = VoprfServer::new(other);
    let mut rng = rand::rng();
    let r = VoprfClient::blind(b"input", &mut rng).expect("blinds");
    let eval = server
        .blind_evaluate_batch(&[r.message], &mut rng)
        .expect("evaluates");
    let err = VoprfClient::batch_finalize(
        &[b"input"],
        &[r.state],
        &eval.messages,
        &eval.proof,
        kp.public(),
    );
    assert_eq!(
        err.expect_err("wrong key must fail"),
        cds_core::Error::ProofVerification
    );
}

#[test]
fn voprf_response_with_one_swapped_element_is_refused() {
    let mut rng = rand::rng();
    let server = VoprfServer::new(KeyPair::generate(&mut rng));
    let a = VoprfClient::blind(b"a", &mut rng).expect("blinds");
    let b = VoprfClient::blind(b"b", &mut rng).expect("blinds");
    let mut eval = server
        .blind_evaluate_batch(&[a.message, b.message], &mut rng)
        .expect("evaluates");
    eval.messages.swap(0, 1);
    let res = VoprfClient::batch_finalize(
        &[b"a", b"b"],
        &[a.state, b.state],
        &eval.messages,
        &eval.proof,
        server.public_key(),
    );
    assert_eq!(
        res.expect_err("swapped elements must fail"),
        cds_core::Error::ProofVerification
    );
}

#[test]
fn oprf_client_output_equals_server_evaluate_for_random_keys() {
    let mut rng = rand::rng();
    let server = OprfServer::new(KeyPair::generate(&mut rng).secret().clone());
    let r = OprfClient::blind(b"+14155550132", &mut rng).expect("blinds");
    let out = r
        .state
        .finalize(b"+14155550132", &server.blind_evaluate(&r.message))
        .expect("finalizes");
    assert_eq!(out, server.evaluate(b"+14155550132").expect("evaluates"));
}

#[test]
fn batch_blinding_gives_the_same_outputs_as_the_server() {
    let mut rng = rand::rng();
    let server = VoprfServer::new(KeyPair::generate(&mut rng));
    let inputs: Vec<&[u8]> = vec![b"+14155550132", b"+442079460958", b"+4915123456789"];
    let blinded = VoprfClient::blind_batch(&inputs, &mut rng).expect("blinds");
    let (states, messages): (Vec<_>, Vec<_>) =
        blinded.into_iter().map(|b| (b.state, b.message)).unzip();
    for m in &messages {
        // The encoding is canonical: it parses back to the same element.
        assert_eq!(
            BlindedElement::from_bytes(m.as_bytes()).expect("canonical"),
            *m
        );
    }
    assert_client_outputs_equal_the_servers(&server, &inputs, states, messages);
}

/// Evaluate `messages` with a proof, finalize on the client side, and check
/// every output against the server's direct evaluation.
fn assert_client_outputs_equal_the_servers(
    server: &VoprfServer,
    inputs: &[&[u8]],
    states: Vec<VoprfClient>,
    messages: Vec<BlindedElement>,
) {
    let eval = server
        .blind_evaluate_batch(&messages, &mut rand::rng())
        .expect("evaluates");
    let outputs = VoprfClient::batch_finalize(
        inputs,
        &states,
        &eval.messages,
        &eval.proof,
        server.public_key(),
    )
    .expect("verifies");
    for (input, out) in inputs.iter().zip(outputs) {
        assert_eq!(out, server.evaluate(input).expect("evaluates"));
    }
}

#[test]
fn additive_blinding_yields_the_rfc_outputs_for_the_vector_key() {
    let s = suite(1);
    let kp = derive(&s, Mode::Voprf);
    let server = VoprfServer::new(kp.clone());
    let mut rng = rand::rng();
    for v in &s.vectors {
        let inputs = list(&v.input);
        let input_refs: Vec<&[u8]> = inputs.iter().map(Vec::as_slice).collect();
        let blinded = VoprfClient::blind_batch_additive(&input_refs, &mut rng).expect("blinds");
        let (states, messages): (Vec<_>, Vec<_>) =
            blinded.into_iter().map(|b| (b.state, b.message)).unzip();
        // Other blinded elements than the vectors' (the blinding differs)...
        assert_ne!(
            packed(&messages, BlindedElement::to_bytes),
            list(&v.blinded_element)
        );
        let eval = server
            .blind_evaluate_batch(&messages, &mut rng)
            .expect("evaluates");
        let outputs = VoprfClient::batch_finalize(
            &input_refs,
            &states,
            &eval.messages,
            &eval.proof,
            kp.public(),
        )
        .expect("proof verifies");
        // ...and exactly the vectors' outputs.
        let got: Vec<Vec<u8>> = outputs.iter().map(|o| o.as_bytes().to_vec()).collect();
        assert_eq!(got, list(&v.output));
    }
}

#[test]
fn additive_and_multiplicative_states_mix_in_one_batch_and_both_table_paths_agree() {
    let mut rng = rand::rng();
    let server = VoprfServer::new(KeyPair::generate(&mut rng));
    // Sizes below and above the point where the public-key table is built.
    for n in [1usize, 3, 4, 9] {
        let numbers: Vec<String> = (0..n).map(|i| format!("+4915123456{i:03}")).collect();
        let inputs: Vec<&[u8]> = numbers.iter().map(|s| s.as_bytes()).collect();
        let half = n / 2;
        let mut blinded = VoprfClient::blind_batch(&inputs[..half], &mut rng).expect("blinds");
        blinded
            .extend(VoprfClient::blind_batch_additive(&inputs[half..], &mut rng).expect("blinds"));
        let (states, messages): (Vec<_>, Vec<_>) =
            blinded.into_iter().map(|b| (b.state, b.message)).unzip();
        assert_client_outputs_equal_the_servers(&server, &inputs, states, messages);
    }
}

#[test]
fn additive_blinding_of_the_same_input_twice_gives_different_elements_and_the_same_output() {
    let mut rng = rand::rng();
    let server = VoprfServer::new(KeyPair::generate(&mut rng));
    let input: &[u8] = b"+14155550132";
    let unblinded = cds_core::oprf::hash_to_group_encoded(Mode::Voprf, input).expect("hashes");
    let a = VoprfClient::blind_batch_additive(&[input], &mut rng).expect("blinds");
    let b = VoprfClient::blind_batch_additive(&[input], &mut rng).expect("blinds");
    // The server sees two different elements, neither of them the input's
    // own point `HashToGroup(input)`...
    assert_ne!(a[0].message, b[0].message);
    for blinded in [&a, &b] {
        assert_ne!(blinded[0].message.to_bytes(), unblinded);
    }
    // ...and each, evaluated in its own request, finalizes to the output
    // the server computes directly: the same output both times.
    for blinded in [a, b] {
        let (states, messages): (Vec<_>, Vec<_>) =
            blinded.into_iter().map(|r| (r.state, r.message)).unzip();
        assert_client_outputs_equal_the_servers(&server, &[input], states, messages);
    }
}

#[test]
fn additive_blinding_refuses_outputs_under_another_public_key() {
    let mut rng = rand::rng();
    let server = VoprfServer::new(KeyPair::generate(&mut rng));
    let other = KeyPair::generate(&mut rng);
    let inputs: Vec<&[u8]> = vec![b"+14155550132"; 5];
    let blinded = VoprfClient::blind_batch_additive(&inputs, &mut rng).expect("blinds");
    let (states, messages): (Vec<_>, Vec<_>) =
        blinded.into_iter().map(|b| (b.state, b.message)).unzip();
    let eval = server
        .blind_evaluate_batch(&messages, &mut rng)
        .expect("evaluates");
    let res = VoprfClient::batch_finalize(
        &inputs,
        &states,
        &eval.messages,
        &eval.proof,
        other.public(),
    );
    assert_eq!(
        res.expect_err("a different key must fail"),
        cds_core::Error::ProofVerification
    );
}
