"""lab/lib/pcap_summary.py, the summary lab-capture prints, on pcap files written here: what it
counts, what it ignores, and the kernel's drop count passed through (the harness refuses a
capture that missed packets). No lab needed."""

import json
import struct
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SUMMARY = REPO / "lab" / "lib" / "pcap_summary.py"
A, B, OUTSIDER = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]), bytes([192, 0, 2, 9])


def _ipv4(src: bytes, dst: bytes, proto: int, l4: bytes) -> bytes:
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 0, 0, 64, proto, 0, src, dst)
    return b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + header + l4


def _pcap(path: Path, frames) -> Path:
    data = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 256, 1)
    for frame in frames:
        data += struct.pack("<IIII", 0, 0, len(frame), len(frame)) + frame
    path.write_bytes(data)
    return path


def _summary(tmp_path: Path, frames, *dropped: str):
    addresses = tmp_path / "addresses"
    addresses.write_text("10.0.0.1\n10.0.0.2\n")
    pcap = _pcap(tmp_path / "capture.pcap", frames)
    out = subprocess.run([sys.executable, str(SUMMARY), str(pcap), str(addresses), *dropped],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def test_esp_per_spi_plaintext_per_protocol_between_nodes_only(tmp_path):
    frames = [_ipv4(A, B, 50, struct.pack("!II", 0x3, 1)), _ipv4(A, B, 50, struct.pack("!II", 0x3, 2)),
              _ipv4(B, A, 17, b"\x00" * 8), _ipv4(A, OUTSIDER, 17, b"\x00" * 8)]
    found = _summary(tmp_path, frames, "0")
    assert found == {"esp": [{"src": "10.0.0.1", "dst": "10.0.0.2", "spi": "0x00000003", "packets": 2}],
                     "plaintext": [{"src": "10.0.0.2", "dst": "10.0.0.1", "proto": "udp", "packets": 1}],
                     "dropped": 0}


def test_the_kernels_drop_count_is_passed_on_and_unknown_is_null(tmp_path):
    assert _summary(tmp_path, [], "7")["dropped"] == 7
    assert _summary(tmp_path, [], "unknown")["dropped"] is None
    assert _summary(tmp_path, [])["dropped"] is None
