#include "tool.h"

int cmd_dedup(int argc, char **argv)
{
    return tool_fail(EXIT_USAGE, "dedup", "not implemented yet");
}
