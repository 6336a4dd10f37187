document.getElementById("status").textContent += ` (loaded at ${new Date().toLocaleTimeString()})`;
