#include "tool.h"

int cmd_anonymize(int argc, char **argv)
{
    return tool_fail(EXIT_USAGE, "anonymize", "not implemented yet");
}
