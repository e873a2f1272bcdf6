//! The COM1 16550 UART, polled: the kernel's log until a console driver exists.

use x86_64::instructions::port::Port;

const COM1: u16 = 0x3f8;

pub struct Serial {
    data: Port<u8>,
    line_status: Port<u8>,
}

impl Serial {
    pub const fn com1() -> Self {
        Serial {
            data: Port::new(COM1),
            line_status: Port::new(COM1 + 5),
        }
    }

    /// 115200 baud, 8N1, FIFOs on, no interrupts.
    pub fn init(&mut self) {
        let writes: [(u16, u8); 7] = [
            (1, 0x00),
            (3, 0x80),
            (0, 0x01),
            (1, 0x00),
            (3, 0x03),
            (2, 0xc7),
            (4, 0x03),
        ];
        for (offset, value) in writes {
            // SAFETY: COM1's registers are I/O ports owned by the kernel log; these writes only
            // configure the UART.
            unsafe { Port::new(COM1 + offset).write(value) };
        }
    }

    pub fn write_byte(&mut self, byte: u8) {
        // SAFETY: reading the line status and writing the data register of COM1 has no effect
        // beyond sending the byte.
        unsafe {
            while self.line_status.read() & 0x20 == 0 {
                core::hint::spin_loop();
            }
            self.data.write(byte);
        }
    }
}

impl core::fmt::Write for Serial {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for byte in s.bytes() {
            if byte == b'\n' {
                self.write_byte(b'\r');
            }
            self.write_byte(byte);
        }
        Ok(())
    }
}
