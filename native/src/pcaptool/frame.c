#include "frame.h"

int frame_l3(uint16_t linktype, const uint8_t *d, uint32_t n, uint16_t *ethertype, bool *tagged,
             uint16_t *vlan)
{
    if (tagged)
        *tagged = false;
    if (vlan)
        *vlan = 0;
    switch (linktype) {
    case 1: {
        if (n < 14)
            return -1;
        uint32_t off = 12;
        uint16_t et = be16(d + off);
        while ((et == 0x8100 || et == 0x88a8 || et == 0x9100) && off + 6 <= n) {
            if (tagged)
                *tagged = true;
            if (vlan && !*vlan)
                *vlan = be16(d + off + 2) & 0x0fff;
            off += 4;
            et = be16(d + off);
        }
        *ethertype = et;
        return (int)off + 2;
    }
    case 113:
        if (n < 16)
            return -1;
        *ethertype = be16(d + 14);
        return 16;
    case 276:
        if (n < 20)
            return -1;
        *ethertype = be16(d);
        return 20;
    case 101:
    case 228:
    case 229:
        if (n < 1)
            return -1;
        *ethertype = (d[0] >> 4) == 4 ? 0x0800 : (d[0] >> 4) == 6 ? 0x86dd : 0;
        return 0;
    default:
        return -1;
    }
}
