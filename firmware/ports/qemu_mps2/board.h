/* Board constants of the QEMU MPS2/MPS3 machines (from the Arm application notes). */
#ifndef TVLM_BOARD_H
#define TVLM_BOARD_H

#include <stdint.h>

#if defined(TVLM_BOARD_AN547)
#define UART0_BASE 0x59303000u  /* CMSDK APB UART0, secure alias (the AN547 boots Secure) */
#define BOARD_PORT_ID TVLM_PORT_QEMU_M55
#define BOARD_FLASH_BYTES (512u * 1024u)
#define BOARD_RAM_BYTES (512u * 1024u)
#define BOARD_SYSTICK_HZ 32000000u
#elif defined(TVLM_BOARD_AN500)
#define UART0_BASE 0x40004000u  /* CMSDK APB UART0 */
#define BOARD_PORT_ID TVLM_PORT_QEMU_M7
#define BOARD_SYSTICK_HZ 25000000u
#define BOARD_FLASH_BYTES (1024u * 1024u)
#define BOARD_RAM_BYTES (320u * 1024u)
#else
#define UART0_BASE 0x40004000u
#define BOARD_PORT_ID TVLM_PORT_QEMU_M4
#define BOARD_SYSTICK_HZ 25000000u
#define BOARD_FLASH_BYTES (1024u * 1024u)
#define BOARD_RAM_BYTES (320u * 1024u)
#endif

#define REG32(addr) (*(volatile uint32_t *)(addr))

/* CMSDK APB UART */
#define UART_DATA REG32(UART0_BASE + 0x00u)
#define UART_STATE REG32(UART0_BASE + 0x04u) /* bit0 TX full, bit1 RX full */
#define UART_CTRL REG32(UART0_BASE + 0x08u)  /* bit0 TX enable, bit1 RX enable */
#define UART_BAUDDIV REG32(UART0_BASE + 0x10u)

/* SysTick and SCB */
#define SYST_CSR REG32(0xE000E010u)
#define SYST_RVR REG32(0xE000E014u)
#define SYST_CVR REG32(0xE000E018u)
#define SCB_CPACR REG32(0xE000ED88u)

#endif
