"""The upload parser's own process: reads {"path", "name"} lines on stdin, answers one JSON line each.

It runs under an address-space limit, so a decompression bomb ends this process, not the app. It
says "ready" only after its imports, so the app's time limit counts parsing alone.
"""

import json
import resource
import sys
from pathlib import Path

from core.knowledge.loaders import UnreadableDocument, parse_file
from core.knowledge.uploads import READY


def main() -> None:
    limit = int(sys.argv[1]) * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    print(READY, flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        try:
            parsed = parse_file(Path(request["path"]), request["name"])
            reply = {"text": parsed.text, "notes": parsed.notes}
        except UnreadableDocument as error:
            reply = {"error": str(error)}
        except MemoryError:
            reply = {"error": f"{request['name']}: parsing needed more memory than allowed and was stopped"}
        except Exception as error:  # a parser bug must reach the user as a message, not a traceback
            reply = {"error": f"{request['name']}: could not be read ({type(error).__name__})"}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
