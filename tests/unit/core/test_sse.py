from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from relaygate.core.sse import SSEDecoder, SSEFrame, encode_frame


def test_frames_split_across_chunks() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"event: message_start\nda") == []
    assert decoder.pending
    frames = decoder.feed(b'ta: {"a":1}\n\ndata: [DONE]\n\n')
    assert frames == [SSEFrame("message_start", '{"a":1}'), SSEFrame(None, "[DONE]")]
    assert not decoder.pending


def test_a_frame_begun_by_its_event_line_alone_is_pending() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"event: error\n") == []
    assert decoder.pending
    assert decoder.feed(b"data: {}\n\n") == [SSEFrame("error", "{}")]
    assert not decoder.pending


def test_crlf_comments_and_multiline_data() -> None:
    decoder = SSEDecoder()
    frames = decoder.feed(b": keep-alive\r\nevent: ping\r\ndata: a\r\ndata: b\r\n\r\n")
    assert frames == [SSEFrame("ping", "a\nb")]


def test_finish_flushes_an_unterminated_frame() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: last") == []
    assert decoder.finish() == [SSEFrame(None, "last")]
    assert decoder.finish() == []


@given(
    st.lists(
        st.tuples(
            st.one_of(st.none(), st.text(alphabet="abcdefgh_", min_size=1, max_size=12)),
            st.text(
                alphabet=st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)),
                max_size=40,
            ),
        ),
        max_size=8,
    ),
    st.integers(min_value=1, max_value=7),
)
def test_any_chunking_gives_the_same_frames(
    frames: list[tuple[str | None, str]], step: int
) -> None:
    wire = b"".join(encode_frame(data.encode(), event) for event, data in frames)
    decoder = SSEDecoder()
    seen: list[SSEFrame] = []
    for start in range(0, len(wire), step):
        seen += decoder.feed(wire[start : start + step])
    seen += decoder.finish()
    assert seen == [SSEFrame(event, data) for event, data in frames]


def _frames_line_by_line(wire: bytes) -> list[SSEFrame]:
    """The event-stream line rules, one line at a time (what the decoder must agree with)."""
    frames: list[SSEFrame] = []
    event: str | None = None
    data: list[str] = []
    lines = wire.split(b"\n")
    for line in lines[:-1]:  # the last piece has no line end yet
        line = line.removesuffix(b"\r")
        if not line:
            if data or event is not None:
                frames.append(SSEFrame(event, "\n".join(data)))
            event, data = None, []
            continue
        if line.startswith(b":"):
            continue
        name, _, value = line.partition(b":")
        value = value.removeprefix(b" ")
        if name == b"data":
            data.append(value.decode("utf-8", errors="replace"))
        elif name == b"event":
            event = value.decode("utf-8", errors="replace")
    return frames


@given(
    st.lists(
        st.sampled_from(
            [
                *(b"data", b"event", b"id", b"retry", b":", b": ", b" ", b"x", b"\xc3\xa9"),
                *(b"\xff", b"\r", b"\n", b"\r\n", b"\n\n", b"data: a\n", b"event: e\n", b"data\n"),
            ]
        ),
        max_size=40,
    ),
    st.integers(min_value=1, max_value=9),
)
def test_any_bytes_in_any_chunks_follow_the_line_rules(pieces: list[bytes], step: int) -> None:
    wire = b"".join(pieces)
    decoder = SSEDecoder()
    seen: list[SSEFrame] = []
    for start in range(0, len(wire), step):
        seen += decoder.feed(wire[start : start + step])
    assert seen == _frames_line_by_line(wire)


@given(
    st.sampled_from([b"data: ", b"data:", b"event: e\ndata: ", b": c\ndata: ", b"data: a\n"]),
    st.text(max_size=20).map(lambda text: text.encode()),
    st.sampled_from([b"\n\n", b"\r\n\n", b"\n\r\n", b"\r\n\r\n", b"\n", b""]),
    st.booleans(),
)
def test_a_chunk_of_one_frame_follows_the_line_rules(
    head: bytes, data: bytes, end: bytes, after_a_partial_frame: bool
) -> None:
    before = b"data: x\n" if after_a_partial_frame else b""
    wire = before + head + data + end
    decoder = SSEDecoder()
    seen = decoder.feed(before) if before else []
    seen += decoder.feed(head + data + end)
    assert seen == _frames_line_by_line(wire)
