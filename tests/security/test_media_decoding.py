"""Uploaded "videos" are decoded from their own bytes: no playlist, concat list, image
pattern or data reference makes the SDK, the CLI or the gateway open another file or URL,
and a lying header is refused before anything is decoded."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path

import httpx
import pytest
from hostile_media import (
    ffconcat,
    hls_playlist,
    image2_pattern,
    mp4_claiming_frames,
    mp4_with_external_data,
    write_video,
)
from loopback import serve_app

from deepfake_client import DeepfakeClient, VideoError
from deepfake_client.video import VideoLimits, probe_video, read_frames, sample_indices, sniff_container

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(str(REPO / p) for p in ("", "model_repository", "client"))}
CLOSED_PORT_URL = "127.0.0.1:9"  # discard: nothing listens; the decoder must refuse before any connection


def hostile_uploads(folder: Path, http_port: int) -> dict[str, tuple[str, bytes]]:
    """name -> (the attacker's own file name, bytes), each naming a file or URL on this machine."""
    victim = write_video(folder / "victim.mp4")
    pattern = image2_pattern(folder)
    return {
        "hls_file_url": ("list.m3u8", hls_playlist(f"file://{victim}")),
        "hls_loopback_http": ("list.m3u8", hls_playlist(f"http://127.0.0.1:{http_port}/seg.ts")),
        "ffconcat_relative": ("list.ffconcat", ffconcat("victim.mp4")),
        "ffconcat_absolute": ("list.ffconcat", ffconcat(str(victim))),
        "image2_pattern": (Path(pattern).name, (folder / "img001.png").read_bytes()),
    }


@pytest.fixture
def folder(tmp_path) -> Path:
    return tmp_path


def check_server_reached_only_by_control(recording_server) -> None:
    """The HTTP target saw nothing from the decoder, yet it does answer (so the test could fail)."""
    assert recording_server.requests == []
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(f"http://127.0.0.1:{recording_server.port}/control", timeout=5)
    assert recording_server.requests == ["/control"]


def test_only_mp4_matroska_and_avi_are_recognised_from_their_first_bytes():
    assert sniff_container(b"\0\0\0\x18ftypisom") == "mov"
    assert sniff_container(b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81") == "matroska"
    assert sniff_container(b"RIFF\x10\0\0\0AVI ") == "avi"
    for head in (b"#EXTM3U\n#EXT", b"ffconcat ver", b"\x89PNG\r\n\x1a\n\0\0\0\r", b"RIFF\0\0\0\0WAVE", b"", b"\0" * 12):
        assert sniff_container(head) is None


def test_sdk_refuses_playlists_concat_lists_and_patterns_under_any_name(folder, recording_server):
    uploads = hostile_uploads(folder, recording_server.port)
    client = DeepfakeClient(CLOSED_PORT_URL, timeout_s=5)
    try:
        for case, (own_name, data) in uploads.items():
            for name in (own_name, "clip.mp4"):
                path = folder / "upload" / case / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
                with pytest.raises(VideoError, match="not a supported video") as refused:
                    client.detect_video(path, num_frames=4)
                assert str(folder) not in str(refused.value), case  # no path of this machine in the answer
    finally:
        client.close()
    check_server_reached_only_by_control(recording_server)


def test_cli_refuses_a_playlist_naming_a_local_video_before_any_connection(folder):
    victim = write_video(folder / "victim.mp4")
    for name in ("list.m3u8", "clip.mp4"):
        (folder / name).write_bytes(hls_playlist(f"file://{victim}"))
        result = subprocess.run(
            [sys.executable, "-m", "deepfake_client.cli", "video", str(folder / name), "--url", CLOSED_PORT_URL],
            capture_output=True, text=True, env=ENV, timeout=120,
        )
        assert result.returncode == 4, result.stderr  # INVALID_INPUT, not "unavailable": nothing was decoded or sent
        assert "not a supported video" in result.stderr and "Traceback" not in result.stderr


def test_an_existing_and_a_missing_named_file_get_the_same_answer(folder):
    victim = write_video(folder / "victim.mp4")
    answers = []
    for target in (victim, folder / "missing.mp4"):
        (folder / "clip.mp4").write_bytes(hls_playlist(f"file://{target}"))
        with pytest.raises(VideoError) as refused:
            probe_video(folder / "clip.mp4")
        answers.append(str(refused.value))
        (folder / "dref.mp4").write_bytes(mp4_with_external_data(victim, target.name))
        with pytest.raises(VideoError) as refused:
            probe_video(folder / "dref.mp4")
        answers.append(str(refused.value))
    assert answers[0] == answers[2] and answers[1] == answers[3]


def test_mp4_data_references_are_not_followed(folder):
    import av

    victim = write_video(folder / "victim.mp4", colour=77)
    hostile = folder / "clip.mp4"
    hostile.write_bytes(mp4_with_external_data(victim))
    # Control: FFmpeg with data references enabled does read the neighbour's frames.
    with av.open(str(hostile), options={"enable_drefs": "1"}) as container:
        assert sum(1 for _ in container.decode(video=0)) == 10
    with pytest.raises(VideoError):
        info = probe_video(hostile)
        list(read_frames(info, sample_indices(info.frame_count, 4)))


def test_a_header_claiming_a_billion_frames_is_refused_before_decoding(folder):
    victim = write_video(folder / "victim.mp4")
    (folder / "huge.mp4").write_bytes(mp4_claiming_frames(victim, 10**9))
    # In a fresh interpreter, so that its peak memory is this probe's alone.
    script = textwrap.dedent(f"""
        import resource, time
        from deepfake_client.video import probe_video
        from deepfake_client.errors import VideoError
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.monotonic()
        try:
            probe_video({str(folder / "huge.mp4")!r})
            print("accepted")
        except VideoError as error:
            print("refused", error)
        grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
        print("grown_kib", grown_kib, "seconds", time.monotonic() - started)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=ENV, timeout=120)
    lines = result.stdout.splitlines()
    assert lines[0] == "refused the video claims 1,000,000,000 frames, over the limit of 1,000,000", result.stderr
    _, grown_kib, _, seconds = lines[1].split()
    assert int(grown_kib) < 50_000 and float(seconds) < 5


def test_limits_refuse_size_duration_and_decoding_work(folder):
    victim = write_video(folder / "victim.mp4", num_frames=20, fps=10)
    with pytest.raises(VideoError, match="frames, over the limit"):
        probe_video(victim, VideoLimits(max_frames=19))
    with pytest.raises(VideoError, match="lasts 2 s, over the limit of 1 s"):
        probe_video(victim, VideoLimits(max_seconds=1))
    with pytest.raises(VideoError, match="64x48 pixels, over the limit of 32x32"):
        probe_video(victim, VideoLimits(max_width=32, max_height=32))
    with pytest.raises(VideoError, match="bytes, over the limit"):
        probe_video(victim, VideoLimits(max_bytes=100))
    info = probe_video(victim, VideoLimits(max_decoded_bytes=64 * 48 * 3 * 10))
    assert len(list(read_frames(info, [0, 9]))) == 2  # ten frames decoded: within the budget
    with pytest.raises(VideoError, match="decodes .* bytes, over the limit"):
        list(read_frames(info, [0, 10]))


def test_gateway_refuses_playlists_concat_lists_and_patterns_alike(folder, recording_server):
    from web_fakes import FakeClient

    from deepfake_client.web import create_app

    uploads = hostile_uploads(folder, recording_server.port)
    answers = set()
    with serve_app(create_app(FakeClient())) as address, httpx.Client(base_url=f"http://{address}", timeout=60) as http:
        for case, (own_name, data) in uploads.items():
            for name in (own_name, "clip.mp4"):
                response = http.post("/api/video/detect", files={"file": (name, data, "video/mp4")}, data={"max_frames": "4"})
                assert response.status_code == 415, (case, name, response.text)
                body = response.json()
                assert body["error"] == "unsupported_media_type" and str(folder) not in body["detail"]
                answers.add(body["detail"].replace(repr(name), "NAME"))
        # The existence oracle: a playlist naming a missing file answers exactly as one naming an existing file.
        missing = hls_playlist(f"file://{folder / 'missing.mp4'}")
        response = http.post("/api/video/detect", files={"file": ("clip.mp4", missing, "video/mp4")})
        assert response.status_code == 415 and response.json()["detail"].replace("'clip.mp4'", "NAME") in answers
        # A real video still works through the same path.
        real = http.post("/api/video/detect", files={"file": ("v.mp4", (folder / "victim.mp4").read_bytes(), "video/mp4")},
                         data={"max_frames": "4"})
        assert real.status_code == 200, real.text
    assert len(answers) == 1  # every refusal reads the same, whatever was named
    check_server_reached_only_by_control(recording_server)
