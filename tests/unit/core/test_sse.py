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
