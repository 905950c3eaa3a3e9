#include "tool.h"

int cmd_merge(int argc, char **argv)
{
    return tool_fail(EXIT_USAGE, "merge", "not implemented yet");
}
