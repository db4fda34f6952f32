@echo off
rem Runs the whole system locally on Windows: builds in release mode, starts the backend on
rem 127.0.0.1:8000 with the dashboard on 127.0.0.1:1337. Ctrl+C (or closing the window) stops it.
setlocal
cd /d "%~dp0"
if "%PORT%"=="" set PORT=8000
if "%DASHBOARD_PORT%"=="" set DASHBOARD_PORT=1337

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
cargo build --release --locked -p backend -p agent
if errorlevel 1 (
    echo start.bat: the build failed; the messages above say why
    exit /b 1
)

rem The dashboard: WebAssembly plus wasm-bindgen of exactly the version in Cargo.lock.
set DIST=target\dashboard-dist
rustup target add wasm32-unknown-unknown >nul
for /f "usebackq delims=" %%v in (`powershell -NoProfile -Command "$l = Get-Content Cargo.lock; $i = [array]::IndexOf($l, 'name = \"wasm-bindgen\"'); $l[$i + 1] -replace 'version = \"(.*)\"', '$1'"`) do set WBG=%%v
wasm-bindgen --version 2>nul | findstr /c:"%WBG%" >nul
if errorlevel 1 cargo install wasm-bindgen-cli --version %WBG%
cargo build -p dashboard --target wasm32-unknown-unknown --profile wasm-release --locked
if errorlevel 1 (
    echo start.bat: the dashboard build failed; the messages above say why
    exit /b 1
)
if not exist %DIST% mkdir %DIST%
wasm-bindgen --target web --no-typescript --out-dir %DIST% --out-name app target\wasm32-unknown-unknown\wasm-release\dashboard.wasm
copy /y dashboard\web\index.html %DIST% >nul
copy /y dashboard\web\style.css %DIST% >nul
copy /y dashboard\web\favicon.svg %DIST% >nul

echo.
echo   Dashboard:  http://127.0.0.1:%DASHBOARD_PORT%
echo   API:        http://127.0.0.1:%PORT%   (OpenAPI: http://127.0.0.1:%PORT%/openapi.json)
echo   Live feed:  ws://127.0.0.1:%PORT%/ws
echo.
echo   Start an agent on this machine (another window):
echo     set API_URL=http://127.0.0.1:%PORT% ^&^& target\release\agent.exe
echo   Ctrl+C stops everything.
echo.
rem One process serves both doors, the API and the dashboard, with the same guards.
set DASHBOARD_ADDR=127.0.0.1:%DASHBOARD_PORT%
set DASHBOARD_DIST=%DIST%
target\release\backend.exe
