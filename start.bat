@echo off
rem Runs the whole system locally on Windows: builds in release mode and starts the backend
rem on 127.0.0.1:8000. Close the window or press Ctrl+C to stop it.
setlocal
cd /d "%~dp0"
if "%PORT%"=="" set PORT=8000

where cargo >nul 2>nul
if errorlevel 1 (
    echo start.bat: cargo not found; install Rust from https://rustup.rs and run this again
    exit /b 1
)
netstat -an | findstr /r /c:"127.0.0.1:%PORT% .*LISTENING" /c:"0.0.0.0:%PORT% .*LISTENING" >nul
if not errorlevel 1 (
    echo start.bat: port %PORT% is already in use; stop what runs there or set PORT=...
    exit /b 1
)

echo building (release)...
cargo build --release --locked -p backend
if errorlevel 1 (
    echo start.bat: the build failed; the messages above say why
    exit /b 1
)

echo.
echo   API:        http://127.0.0.1:%PORT%   (OpenAPI: http://127.0.0.1:%PORT%/openapi.json)
echo   Live feed:  ws://127.0.0.1:%PORT%/ws
echo   Ctrl+C stops it.
echo.
target\release\backend.exe
