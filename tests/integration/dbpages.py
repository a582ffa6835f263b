"""The page checksums of an embedded store's tpdefs.db (format 2; docs/FORMAT.md), for tests that
damage a database on purpose or change it behind the store's back with Python's sqlite3 (whose
writes do not keep tpdefs's checksums)."""
import struct


def page_sum(page, pgno):
    """The 8 bytes tpdefs keeps at the end of page pgno (counted from 1)."""
    n = (len(page) - 8) // 4
    s1, s2 = pgno & 0xffffffff, 0
    for w in struct.unpack_from(f'<{n}I', page):
        s1 = (s1 + w) & 0xffffffff
        s2 = (s2 + s1) & 0xffffffff
    return struct.pack('<II', s1, s2)


def _layout(data):
    pg = int.from_bytes(data[16:18], 'big')
    return (65536 if pg == 1 else pg), data[20] == 8


def bad_pages(path):
    """Page numbers whose checksum does not match ([] also for a database without checksums)."""
    data = open(path, 'rb').read()
    pg, sums = _layout(data)
    if not sums:
        return []
    return [i + 1 for i in range(len(data) // pg)
            if page_sum(data[i * pg:(i + 1) * pg], i + 1) != data[(i + 1) * pg - 8:(i + 1) * pg]]


def fix_checksums(path):
    """Recompute every page's checksum (after a change made without tpdefs's VFS)."""
    data = bytearray(open(path, 'rb').read())
    pg, sums = _layout(data)
    if not sums:
        return
    for i in range(len(data) // pg):
        data[(i + 1) * pg - 8:(i + 1) * pg] = page_sum(bytes(data[i * pg:(i + 1) * pg]), i + 1)
    with open(path, 'r+b') as f:
        f.write(data)
