"""Grounded commands through a running detect_node over real DDS (known-answer models, placed scenes).

One node process serves every test of this file (a node start costs seconds); the tests share its
command history, so each one that uses "it" first gives the command "it" refers to.  Through the
Detect service: relations, ordinals and negation pick the right object, "it" stays on the same
object, ungroundable commands answer success=false with the reason, per-phrase thresholds come from
the command and from the ``target_thresholds`` parameter.  On the topic path: "it", a history shared
with the service, and ungroundable commands clearing the standing command with the reason on
``~/status``.
"""

import pytest

from ros_helpers import node_log, ros_node, start_node, stop_node
from tinyvlm_ros.geometry import box_iou
from tinyvlm_ros.testing.scenes import place_scene

rclpy = pytest.importorskip("rclpy")

from std_msgs.msg import Header  # noqa: E402

from test_detect_node import Client, _params_file  # noqa: E402
from tinyvlm_ros.ros import convert  # noqa: E402
from tinyvlm_ros.srv import Detect  # noqa: E402

# three red blocks in a row, a blue block at the end, a big green ball above the middle red block and a
# small yellow ball above the blue one
ROW = [("red block", 100, 320, 60), ("red block", 240, 320, 60), ("red block", 380, 320, 60),
       ("blue block", 490, 320, 60), ("green ball", 240, 150, 70), ("yellow ball", 470, 150, 50)]
# two purple balls with an orange block between them, and a second orange block below
BETWEEN = [("purple ball", 120, 240, 60), ("orange block", 320, 240, 50), ("purple ball", 520, 240, 60),
           ("orange block", 320, 400, 50)]
THRESHOLDS = "red ball:0.001"   # the known-answer matcher scores "red ball" ~0.004 on a red block


@pytest.fixture(scope="module")
def scenes():
    # "row_b": the row without its leftmost red block, so the block at x=240 is now the first from the left
    return {"row": place_scene(ROW, seed=4), "row_b": place_scene(ROW[1:], seed=4),
            "between": place_scene(BETWEEN, seed=5)}


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    from tinyvlm_ros.testing.models import make_known_answer_set

    tmp = tmp_path_factory.mktemp("grounding_node")
    models = make_known_answer_set(tmp / "known")
    proc = start_node("detect_node", ["--params-file", _params_file(), "-p", f"model_dir:={models}",
                                      "-p", "image_reliability:=reliable", "-p", "diagnostics_period_s:=0.2",
                                      "-p", f"target_thresholds:='{THRESHOLDS}'"],
                      log_path=tmp / "detect_node.log")
    try:
        with ros_node("grounding_client") as n:
            c = Client(n)
            c.wait_ready(proc)
            yield proc, c
    finally:
        assert stop_node(proc) == 0, node_log(proc)[-3000:]


_stamp = [2000]


def _image(scene):
    _stamp[0] += 1
    header = Header(frame_id="camera")
    header.stamp.sec = _stamp[0]
    return convert.rgb_to_image_msg(scene.image, header)


def _call(node, command, scene):
    proc, c = node
    res = c.call(Detect.Request(command=command, image=_image(scene)), proc)
    assert res.command_id > 0 and res.info.command_id == res.command_id, (command, res.message)
    assert len(res.info.roles) == len(res.detections.detections)
    return res


def _boxes(res_or_msg):
    """Boxes of a Detect response's or a Detection2DArray's detections, in order."""
    msg = res_or_msg.detections if isinstance(res_or_msg, Detect.Response) else res_or_msg
    return [box for _, _, box in convert.msg_to_boxes(msg)]


def _which(scene, box):
    """Index of the scene object ``box`` is (IoU >= 0.5), or None."""
    hits = [i for i, o in enumerate(scene.objects) if box_iou(box, o.box_xyxy) >= 0.5]
    return hits[0] if hits else None


@pytest.mark.parametrize("scene_name, command, want, hidden", [
    # (scene, command, the object detection 0 must be, objects no detection may be: references, exclusions)
    ("row", "the second red block from the left", 1, ()),
    ("row", "the third red block from the right", 0, ()),
    ("row", "the red block below the green ball", 1, (4,)),
    ("row", "the block that is not red", 3, (0, 1, 2)),
    ("row", "don't pick the red block, pick the blue one", 3, (0, 1, 2)),
    ("row", "the ball left of the yellow ball", 4, (5,)),
    ("between", "the orange block between the purple balls", 1, (0, 2)),
])
def test_service_picks_the_meant_object(node, scenes, scene_name, command, want, hidden):
    scene = scenes[scene_name]
    res = _call(node, command, scene)
    assert res.success, res.message
    assert res.understood and list(res.not_understood) == []
    found = [_which(scene, b) for b in _boxes(res)]
    assert found and found[0] == want, (command, found)
    assert res.info.roles[0] == "target" and all(r == "candidate" for r in res.info.roles[1:])
    assert not set(found) & set(hidden), (command, found)
    assert all(d.id.startswith(f"{res.command_id}/") for d in res.detections.detections)


def test_service_it_stays_on_the_object_when_the_description_now_fits_another(node, scenes):
    first = _call(node, "the second red block from the left", scenes["row"])
    assert _which(scenes["row"], _boxes(first)[0]) == 1                # the block at x=240
    row_b = scenes["row_b"]                                            # objects 1.. of the row
    it = _call(node, "grab it", row_b)
    assert it.success and "previous target" in it.understood, it.message
    assert _which(row_b, _boxes(it)[0]) == 0                           # still the block at x=240
    other = _call(node, "no, the other one", row_b)
    assert other.success, other.message
    assert _which(row_b, _boxes(other)[0]) == 1                        # the other red block, x=380
    # the description alone would have chosen the block at x=380: "it" was not the description again
    again = _call(node, "the second red block from the left", row_b)
    assert _which(row_b, _boxes(again)[0]) == 1


def test_service_ungroundable_commands_answer_success_false_with_the_reason(node, scenes):
    res = _call(node, "the fourth red block from the left", scenes["row"])
    assert not res.success and "was asked for but 3 red blocks are visible" in res.message
    assert "fourth" in res.understood and list(res.targets) == ["red block"]
    assert res.detections.detections == [] and res.detections.header.stamp.sec == _stamp[0]
    res = _call(node, "the red block above the green ball", scenes["row"])
    assert not res.success and "no red block is above the green ball" in res.message
    proc, c = node
    res = c.call(Detect.Request(command="grab the cup behind the plate", image=_image(scenes["row"])), proc)
    assert not res.success and "cannot ground the command" in res.message and "behind" in res.message
    res = _call(node, "grüne Tasse", scenes["row"])                  # kept as written, answered, noted
    assert res.success and "does not look like English" in res.message
    assert list(res.targets) == ["grüne tasse"]


def test_per_phrase_thresholds_from_the_parameter_and_the_command(node, scenes):
    scene = scenes["row"]
    res = _call(node, "the leftmost red ball", scene)      # target_thresholds gives "red ball" 0.001
    assert res.success and "threshold 0.001" in res.understood, res.message
    assert _which(scene, _boxes(res)[0]) == 0
    res = _call(node, "the leftmost red ball:0.5", scene)  # written in the command: it wins
    assert res.success and _boxes(res) == []
    res = _call(node, "the block:0.9999 and the green ball", scene)   # per phrase, in one command
    assert [_which(scene, b) for b in _boxes(res)] == [4]


def test_topic_path_it_shared_history_and_ungroundable_commands(node, scenes):
    proc, c = node
    row, row_b = scenes["row"], scenes["row_b"]

    def frame(scene):
        sent = _image(scene)
        c.image_pub.publish(sent)
        return c.detections_for(sent.header, proc)

    c.command("the second red block from the left")
    st = c.latest_status(proc, lambda s: s.command == "the second red block from the left")
    assert _which(row, _boxes(frame(row))[0]) == 1
    c.command("grab it")
    st = c.latest_status(proc, lambda s: s.command == "grab it")
    assert st.command_id > 0 and list(st.targets) == ["red block"] and "previous target" in st.understood
    msg = frame(row_b)
    assert _which(row_b, _boxes(msg)[0]) == 0 and msg.detections[0].id.startswith(f"{st.command_id}/")
    # the service shares the history: "the other one" is the red block that is not the topic's target
    other = _call(node, "the other one", row_b)
    assert other.success and _which(row_b, _boxes(other)[0]) == 1, other.message

    # not groundable in the frame: an empty array for it, the command cleared, the reason on ~/status
    c.command("the fourth red block from the left")
    st = c.latest_status(proc, lambda s: s.command == "the fourth red block from the left")
    msg = frame(row)
    assert msg.detections == []
    assert c.info_for(msg.header, proc).command_id == st.command_id
    st = c.latest_status(proc, lambda s: s.command == "" and s.command_error != "")
    assert "the fourth red block from the left was asked for but 3 red blocks" in st.command_error
    # not groundable as written: refused at once, the standing command cleared too
    c.command("pick the red block")
    c.latest_status(proc, lambda s: s.command == "pick the red block" and s.command_error == "")
    c.command("pick the cup behind the plate")
    st = c.latest_status(proc, lambda s: s.command == "" and "behind" in s.command_error)
    assert st.understood == "" and list(st.targets) == []
    # a warning is logged once per command, not per frame or per re-send
    c.command("nimm die grüne Tasse")
    c.latest_status(proc, lambda s: s.command == "nimm die grüne Tasse")
    frame(row)
    c.command("nimm die grüne Tasse")
    frame(row)
    log = node_log(proc)
    assert log.count("does not look like English") == 1, log[-3000:]
    assert log.count("cannot be grounded in the frame") == 1 and log.count("'behind'") == 1, log[-3000:]
