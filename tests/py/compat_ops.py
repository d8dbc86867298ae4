"""Drives an fdfs-ha tracker + storage with a third-party PyPI FastDFS client.

Usage: python compat_ops.py <py3fdfs|fdfs-client-py3> <client.conf> <scratch dir>

Runs every operation the client performs correctly against the C FastDFS (see
docs/CLIENTS.md) and checks the bytes. Prints one `ok <op>` line per
operation; any failure raises, so the exit status is non-zero.
"""
import os
import sys
import zlib

kind, conf, scratch = sys.argv[1], sys.argv[2], sys.argv[3]

if kind == "py3fdfs":
    from fdfs_client.client import Fdfs_client, get_tracker_conf

    client = Fdfs_client(get_tracker_conf(conf))
elif kind == "fdfs-client-py3":
    from fdfs_client.client import Fdfs_client

    client = Fdfs_client(conf)
else:
    raise SystemExit(f"unknown client kind {kind}")


def as_id(fid):
    """py3fdfs returns bytes, fdfs-client-py3 str; both accept bytes back."""
    return fid if isinstance(fid, bytes) else fid.encode()


def check_id_shape(fid):
    text = fid.decode()
    group, rest = text.split("/", 1)
    assert group == "group1", text
    assert rest.startswith("M00/") and len(rest) == 44, text


payload = os.urandom(100_000) + b"fdfs-ha compat"

# upload by buffer + download to buffer
r = client.upload_by_buffer(payload, file_ext_name="bin")
fid = as_id(r["Remote file_id"])
check_id_shape(fid)
got = client.download_to_buffer(fid)["Content"]
assert got == payload, "download_to_buffer returned other bytes"
print("ok upload_by_buffer", flush=True)
print("ok download_to_buffer", flush=True)

# upload by file name + download to file
src = os.path.join(scratch, "source.txt")
with open(src, "wb") as f:
    f.write(b"hello from a file\n" * 1000)
r = client.upload_by_filename(src)
fid2 = as_id(r["Remote file_id"])
check_id_shape(fid2)
assert fid2.decode().endswith(".txt"), fid2
dst = os.path.join(scratch, "downloaded.txt")
client.download_to_file(dst, fid2)
with open(src, "rb") as a, open(dst, "rb") as b:
    assert a.read() == b.read(), "download_to_file wrote other bytes"
print("ok upload_by_filename", flush=True)
print("ok download_to_file", flush=True)

# the CRC-32 in the file ID is the content's (clients' file-info helpers decode it)
import base64

b64 = fid.decode().split("/")[-1][:27]
raw = base64.b64decode(b64.replace("-", "+").replace("_", "/") + "=")
assert int.from_bytes(raw[16:20], "big") == zlib.crc32(payload), "crc32 in file ID"
assert int.from_bytes(raw[12:16], "big") == len(payload), "size in file ID"
print("ok file_id_fields", flush=True)

# appender upload + append
r = client.upload_appender_by_buffer(b"part1-", file_ext_name="log")
app = as_id(r["Remote file_id"])
check_id_shape(app)
client.append_by_buffer(b"part2", app)
assert client.download_to_buffer(app)["Content"] == b"part1-part2", "append"
print("ok upload_appender_by_buffer", flush=True)
print("ok append_by_buffer", flush=True)

# delete, then the file is gone
for f in (fid, fid2, app):
    client.delete_file(f)
try:
    client.download_to_buffer(fid)
except Exception:
    pass
else:
    raise AssertionError("deleted file still downloads")
print("ok delete_file", flush=True)
print("ALL OK", flush=True)
