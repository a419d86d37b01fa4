//! Known answers for cds's own derivations, from the worked example in
//! docs/protocol.md §10 (computed there by an independent implementation).

use cds_core::{BucketBits, E164, KeyPair, Mode, RecordKeys, VoprfServer, dangerous};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn key_blinding_evaluation_and_tags_match_the_specification_example() {
    let key = KeyPair::derive(Mode::Voprf, &[0xa3; 32], b"cds-v1 oprf key").expect("derives");
    assert_eq!(
        hex(&*key.secret().to_bytes()),
        "58f79bbb82aa91d4068e350f5efc333711da3c5e1796b0694cce0c1f244c9c05"
    );
    assert_eq!(
        hex(key.public().as_bytes()),
        "2c851d795bc12f994e2e9c4d21ea98ed7300fe673a446a2e272c47212ebfb875"
    );
    let server = VoprfServer::new(key);

    let cases = [
        (
            "+14155550132",
            "64d37aed22a27f5191de1c1d69fadb899d8862b58eb4220029e036ec4c1f6706",
            "466d331c4a3cbd75c728b084225e87dd53ca05a3f1e7012d10934886f2dbea1f",
            "fa27ad2ab6f78a714d3de918b83b203258966f5a6c87d48eab3f9ea07a89ad1e",
            "293487e20cd9f901ebcda159a919ffbc979bc7cb04c9e3481e9a92409350e8ec33aef67d9cda3818bdf89c490e8ca9884944fb0d036c54740f5926679fd2b7b7",
            "f6eae87167e65648",
            0xf6,
        ),
        (
            "+442079460958",
            "222a5e897cf59db8145db8d16e597e8facb80ae7d4e26d9881aa6f61d645fc0e",
            "3c9507c4aa37380947d99a80fcdfc2be4bdbe58a5ce35afef6c19eddeb12f274",
            "48d3ace8c73ddce9f9972398b45045cfc2501607dfae84e39b2dc8dde918c45b",
            "d30d7e827d30c157a6b0994569f7d904719f544fafc5eb789b0e245f8647007b6458aeea9354f9e7b7b1fd2b2f8f4e5d2524b455ff4eb95035f8c18cfd45f2d4",
            "c242d1dd53a027df",
            0xc2,
        ),
    ];
    let mut blinded = Vec::new();
    for (number, blind, want_blinded, want_evaluated, want_output, want_tag, want_bucket) in cases {
        let n = E164::parse(number).expect("valid");
        let blind: [u8; 32] = hex::decode(blind)
            .expect("hex")
            .try_into()
            .expect("32 bytes");
        let b = dangerous::voprf_blind(n.as_bytes(), &blind).expect("blinds");
        assert_eq!(hex(b.message.as_bytes()), want_blinded);
        let evaluated = server.evaluate_elements(&[b.message]);
        assert_eq!(hex(evaluated[0].as_bytes()), want_evaluated);
        let output = server.evaluate(n.as_bytes()).expect("evaluates");
        assert_eq!(hex(output.as_bytes()), want_output);
        let keys = RecordKeys::derive(&output);
        assert_eq!(hex(keys.tag().as_bytes()), want_tag);
        // With b = 8 the bucket is the tag's first byte.
        assert_eq!(
            BucketBits::new(8).expect("valid").bucket_of(keys.tag()),
            want_bucket
        );
        blinded.push(b.message);
    }
    let evaluated = server.evaluate_elements(&blinded);
    let r: [u8; 32] =
        hex::decode("419c4f4f5052c53c45f3da494d2b67b220d02118e0857cdbcf037f9ea84bbe0c")
            .expect("hex")
            .try_into()
            .expect("32 bytes");
    let proof = dangerous::voprf_prove_batch(&server, &blinded, &evaluated, &r).expect("proves");
    assert_eq!(
        hex(&proof.to_bytes()),
        "cfafac7c186665b4bf64297f142e5a59909358a3eb3b14fa84c2f93126fbda0860ec94d3ab27a32afcf70a11b8b1cb9e0dd3818fc28d676780c53a6d9a7ddb0a"
    );
}
