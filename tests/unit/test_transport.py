from visionq.vision.transport import FILE, INLINE, base64_size, plan_transport

MB = 1024 * 1024


def test_base64_growth() -> None:
    assert base64_size(3) == 4 and base64_size(4) == 8 and base64_size(0) == 0


def test_small_images_go_inline() -> None:
    assert plan_transport([1 * MB, 2 * MB], text_bytes=100, inline_limit=20 * MB) == [
        INLINE,
        INLINE,
    ]


def test_an_image_over_the_limit_once_base64_grown_goes_to_the_file_api() -> None:
    # 16 MB is under 20 MB raw but ~21.3 MB in base64.
    assert plan_transport([16 * MB], text_bytes=100, inline_limit=20 * MB) == [FILE]


def test_largest_images_move_first_and_the_rest_stay_inline() -> None:
    sizes = [5 * MB, 9 * MB, 6 * MB]
    assert plan_transport(sizes, text_bytes=1000, inline_limit=20 * MB) == [INLINE, FILE, INLINE]


def test_a_long_prompt_counts_too() -> None:
    assert plan_transport([14 * MB], text_bytes=0, inline_limit=20 * MB) == [INLINE]
    assert plan_transport([14 * MB], text_bytes=2 * MB, inline_limit=20 * MB) == [FILE]
