/* Reset handler, vector table and fault exit for the QEMU MPS2/MPS3 Cortex-M machines. */
#include <stdint.h>

#include "board.h"

extern uint32_t __data_load, __data_start, __data_end, __bss_start, __bss_end, __stack_top;
int main(void);
void Reset_Handler(void);
void Fault_Handler(void);
void SysTick_Handler(void);
void Default_Handler(void);

/* Semihosting SYS_EXIT: ends QEMU at once (needs -semihosting-config enable=on). */
void tvlm_semihost_exit(uint32_t reason);
void tvlm_semihost_exit(uint32_t reason)
{
    register uint32_t r0 __asm__("r0") = 0x18u;
    register uint32_t r1 __asm__("r1") = reason;
    __asm__ volatile("bkpt 0xab" : : "r"(r0), "r"(r1) : "memory");
    for (;;) {
    }
}

void Fault_Handler(void)
{
    tvlm_semihost_exit(0x20023u); /* ADP_Stopped_RunTimeErrorUnknown: a crash ends the run, non-zero */
}

void Default_Handler(void)
{
    tvlm_semihost_exit(0x20023u);
}

void Reset_Handler(void)
{
    /* GCC emits FP instructions in ordinary code: enable CP10/CP11 before touching C */
    SCB_CPACR |= (0xFu << 20);
    __asm__ volatile("dsb\n\tisb" ::: "memory");
    uint32_t *src = &__data_load, *dst = &__data_start;
    while (dst < &__data_end) *dst++ = *src++;
    for (dst = &__bss_start; dst < &__bss_end;) *dst++ = 0u;
    (void)main();
    tvlm_semihost_exit(0x20026u); /* ADP_Stopped_ApplicationExit */
}

__attribute__((section(".vectors"), used)) static void (*const vectors[16 + 32])(void) = {
    (void (*)(void))(&__stack_top),
    Reset_Handler,
    Fault_Handler, /* NMI */
    Fault_Handler, /* HardFault */
    Fault_Handler, /* MemManage */
    Fault_Handler, /* BusFault */
    Fault_Handler, /* UsageFault */
    Fault_Handler, /* SecureFault (v8-M) */
    0, 0, 0,
    Default_Handler, /* SVC */
    Default_Handler, /* DebugMon */
    0,
    Default_Handler, /* PendSV */
    SysTick_Handler,
    [16 ... 47] = Default_Handler,
};
