"""Print one closing line for the whole colcon test run from its JUnit files.

``colcon test-result`` counts ctest entries; this counts the pytest cases
inside them and prints ``tests: N passed, N failed, N skipped``.
"""

import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def main(build_dir: str) -> int:
    passed = failed = skipped = 0
    files = sorted(Path(build_dir).glob("test_results/**/*.xunit.xml"))
    for f in files:
        try:
            root = ET.parse(f).getroot()
        except ET.ParseError:
            failed += 1
            print(f"unreadable test result: {f}", file=sys.stderr)
            continue
        for case in root.iter("testcase"):
            if case.find("skipped") is not None:
                skipped += 1
            elif case.find("failure") is not None or case.find("error") is not None:
                failed += 1
            else:
                passed += 1
    if not files:
        print(f"no test results under {build_dir}", file=sys.stderr)
        return 1
    print(f"tests: {passed} passed, {failed} failed, {skipped} skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "build/tinyvlm_ros"))
