#include "tool.h"

int cmd_flows(int argc, char **argv)
{
    return tool_fail(EXIT_USAGE, "flows", "not implemented yet");
}
