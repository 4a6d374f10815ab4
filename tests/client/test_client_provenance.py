"""C2PA Content Credentials in the SDK: each validation state from images signed at test time
(tests/content_credentials.py), the AI declaration, and failures as a typed state."""

from __future__ import annotations

import json

import pytest
from client_fakes import FakeTransport, ensemble_outputs, fake_client
from content_credentials import CAPTURED, IPTC, jpeg, make_chain, make_samples, sign

from deepfake_client import AiDeclaration, Label, ProvenanceReader, ProvenanceState
from deepfake_client.provenance import parse_store


@pytest.fixture(scope="module")
def samples():
    return make_samples()


@pytest.fixture(scope="module")
def reader(samples):
    return ProvenanceReader(samples.trust_anchor)


def test_a_trusted_signature_is_valid_with_signer_generator_and_ai_generation(samples, reader):
    provenance = reader.read(samples.valid)
    assert provenance.state is ProvenanceState.VALID
    assert provenance.signer == samples.trusted_signer
    assert provenance.issuer == "Deepfake Tests"
    assert provenance.claim_generator == "test-generator 1.0"
    assert provenance.ai is AiDeclaration.GENERATED
    assert provenance.digital_source_types == (IPTC + "trainedAlgorithmicMedia",)
    assert provenance.summary.startswith("Declared AI-generated")
    assert provenance.to_dict()["ai_generated"] is True


def test_a_signer_outside_the_trust_anchors_is_untrusted(samples, reader):
    provenance = reader.read(samples.untrusted)
    assert provenance.state is ProvenanceState.UNTRUSTED
    assert provenance.signer == "Unknown Test Signer"
    assert provenance.ai is AiDeclaration.EDITED
    assert "not trusted" in provenance.summary and "edited with AI" in provenance.summary


def test_without_trust_anchors_even_the_trusted_chain_is_untrusted(samples):
    assert ProvenanceReader().read(samples.valid).state is ProvenanceState.UNTRUSTED


def test_bytes_changed_after_signing_are_tampered(samples, reader):
    provenance = reader.read(samples.tampered)
    assert provenance.state is ProvenanceState.TAMPERED
    assert "dataHash.mismatch" in provenance.detail
    assert provenance.ai is AiDeclaration.GENERATED  # what the manifest claims, reported beside the state
    assert "do not match the file" in provenance.summary


def test_a_file_without_a_manifest_has_none(samples, reader):
    provenance = reader.read(samples.plain)
    assert provenance.state is ProvenanceState.NONE
    assert provenance.signer is None and provenance.ai is None and not provenance.has_manifest


def test_a_manifest_without_ai_declares_nothing(reader):
    chain = make_chain("Camera")
    provenance = ProvenanceReader(chain.root_pem).read(sign(jpeg(), chain, actions=CAPTURED))
    assert provenance.state is ProvenanceState.VALID
    assert provenance.ai is None
    assert provenance.summary.endswith("no AI generation declared.")


def test_a_garbled_manifest_is_unreadable(samples, reader):
    provenance = reader.read(samples.unreadable)
    assert provenance.state is ProvenanceState.UNREADABLE
    assert "JUMB" in provenance.detail and not provenance.has_manifest
    assert provenance.summary == "Content Credentials could not be read."


@pytest.mark.parametrize("data", [b"not an image at all", b"\xff\xd8\xff" + bytes(100), jpeg()[:50]])
def test_unreadable_input_is_a_typed_state_not_an_exception(reader, data):
    provenance = reader.read(data)
    assert provenance.state in (ProvenanceState.UNREADABLE, ProvenanceState.NONE)
    if provenance.state is ProvenanceState.UNREADABLE:
        assert provenance.detail


def test_input_over_the_bound_is_not_parsed(samples):
    provenance = ProvenanceReader(max_bytes=100).read(samples.valid)
    assert provenance.state is ProvenanceState.UNREADABLE
    assert "over 100" in provenance.detail


def test_trust_anchors_must_be_pem():
    with pytest.raises(ValueError, match="PEM"):
        ProvenanceReader("not a certificate")


def test_ai_editing_of_a_created_image_is_edited_not_generated():
    store = {"active_manifest": "m", "validation_state": "Trusted", "manifests": {"m": {
        "claim_generator": "Old Tool/1.0", "signature_info": {"issuer": "Org"},
        "assertions": [{"label": "c2pa.actions.v2", "data": {"actions": [
            {"action": "c2pa.created", "digitalSourceType": IPTC + "digitalCapture"},
            {"action": "c2pa.edited", "digitalSourceType": IPTC + "trainedAlgorithmicMedia"}]}}]}}}
    provenance = parse_store(json.loads(json.dumps(store)))
    assert provenance.ai is AiDeclaration.EDITED
    assert provenance.claim_generator == "Old Tool/1.0"
    assert provenance.signer == "Org"


def test_the_sdk_reports_provenance_beside_the_verdict_and_never_changes_it(samples):
    outputs = ensemble_outputs([[0.2, 0.1, 0.3, 0.2]])  # the models say REAL
    with fake_client(FakeTransport(lambda _: outputs), provenance=ProvenanceReader(samples.trust_anchor)) as client:
        result = client.detect(samples.valid)
        batch = client.detect_many([samples.untrusted, samples.tampered, samples.plain])
    assert result.label is Label.REAL  # the file's AI declaration does not overrule the models ...
    assert result.provenance.state is ProvenanceState.VALID  # ... it is reported beside them
    assert result.provenance.ai is AiDeclaration.GENERATED
    assert result.to_dict()["provenance"]["state"] == "valid"
    assert [r.provenance.state for r in batch] == [ProvenanceState.UNTRUSTED, ProvenanceState.TAMPERED, ProvenanceState.NONE]


def test_provenance_can_be_off(samples):
    with fake_client(FakeTransport(lambda _: ensemble_outputs([[0.9, 0.9, 0.9, 0.9]])), provenance=None) as client:
        result = client.detect(samples.valid)
    assert result.label is Label.FAKE and result.provenance is None
    assert result.to_dict()["provenance"] is None


def test_records_keep_the_provenance_state(samples, tmp_path):
    from deepfake_client.records.sdk import RecordingClient
    from deepfake_client.records.store import RecordStore

    url = f"sqlite:///{tmp_path / 'records.sqlite'}"
    inner = fake_client(FakeTransport(lambda _: ensemble_outputs([[0.2, 0.1, 0.3, 0.2]])),
                        provenance=ProvenanceReader(samples.trust_anchor))
    with RecordingClient(inner, RecordStore(url)) as client:
        client.detect(samples.valid)
        client.detect_many([samples.untrusted, samples.tampered, samples.plain])
    store = RecordStore(url)
    try:
        states = sorted(r["provenance"] for r in store.page(limit=10))
    finally:
        store.close()
    assert states == ["none", "tampered", "untrusted", "valid"]


def test_one_reader_serves_many_threads(samples, reader):
    """The gateway's worker threads share one reader."""
    from concurrent.futures import ThreadPoolExecutor

    cases = [samples.valid, samples.untrusted, samples.tampered, samples.plain, samples.unreadable] * 8
    with ThreadPoolExecutor(max_workers=8) as pool:
        states = list(pool.map(lambda data: reader.read(data).state.value, cases))
    assert states == ["valid", "untrusted", "tampered", "none", "unreadable"] * 8
