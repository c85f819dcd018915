"""Re-create the tiny test clips from the project's shared footage (see ATTRIBUTION.md).

    PYTHONPATH=. python tests/data/make_clips.py [/path/to/shared/data/videos]
"""

import sys
from pathlib import Path

from inti_edge.data.transcode import transcode

here = Path(__file__).resolve().parent
videos = Path(sys.argv[1] if len(sys.argv) > 1 else here.parents[2] / "shared" / "data" / "videos")
# 8 s of Big Buck Bunny (minute 1), h264 in mp4, 160x90, 24 fps
print(transcode(videos / "big_buck_bunny_full.mp4", here / "bbb_8s_160x90.mp4", short_side=90, start=60.0, duration=8.0, crf=26))
# the UCF101 SoccerJuggling clip cut to 4 s, MPEG-4 part 2 in AVI (another container and codec), 160x120
print(
    transcode(
        videos / "v_SoccerJuggling_g23_c01.avi", here / "soccer_juggling_4s_160x120.avi", short_side=120,
        fps=30000 / 1001, duration=4.0, codec="mpeg4", bit_rate=300_000,
    )
)
